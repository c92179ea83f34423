"""Parsing command-line values (durations, K=V) and building RunTask overrides.

Pure functions raising ``BadParameter`` that name the option, so a typo gets a usage error
("--timeout: ...") before anything is sent to the server.
"""

from __future__ import annotations

import re

import typer

from hatoba.model.task import ContainerOverride, KeyValue, TaskOverride
from hatoba.model.taskdef import TaskDefinition

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str, option: str = "duration") -> float:
    """``90`` (seconds), ``30s``, ``5m``, ``1h30m``, ``1.5h``, ``250ms``, ``2d`` -> seconds > 0."""
    value = text.strip().lower()
    hint = f"{option}: {text!r} is not a duration (examples: 90, 30s, 5m, 1h30m)"
    if not value:
        raise typer.BadParameter(hint)
    if re.fullmatch(r"\d+(?:\.\d+)?", value):
        seconds = float(value)
    else:
        pos, seconds = 0, 0.0
        for match in _DURATION_PART.finditer(value):
            if match.start() != pos:
                raise typer.BadParameter(hint)
            seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
            pos = match.end()
        if pos != len(value):
            raise typer.BadParameter(hint)
    if seconds <= 0:
        raise typer.BadParameter(f"{option}: must be more than zero (got {text!r})")
    return seconds


def parse_env(items: list[str], option: str = "--env") -> list[KeyValue]:
    """``K=V`` pairs (the value may contain ``=`` or be empty); later ones win."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"{option}: expected NAME=VALUE, got {item!r}")
        if "\0" in name or "\0" in value:
            raise typer.BadParameter(f"{option}: {item!r} contains a NUL byte")
        out[name] = value
    return [KeyValue(name=k, value=v) for k, v in out.items()]


def target_container(td: TaskDefinition, container: str | None) -> str:
    """The container a command override applies to: ``--container``, else the first
    essential container (the task's main process), else the first one."""
    names = [c.name for c in td.container_definitions]
    if container is not None:
        if container not in names:
            raise typer.BadParameter(
                f"--container: no container {container!r} in {td.arn} "
                f"(containers: {', '.join(names)})"
            )
        return container
    for c in td.container_definitions:
        if c.essential:
            return c.name
    return names[0]


def build_overrides(
    td: TaskDefinition,
    *,
    command: list[str] | None = None,
    container: str | None = None,
    env: list[str] | None = None,
    cpu: int | None = None,
    memory: int | None = None,
) -> TaskOverride:
    """RunTask overrides from ``hatoba run``'s options.

    The command goes to ``target_container``. ``--env`` goes to ``--container`` when given,
    else to every container (it is a task-level option). ``--cpu``/``--memory`` are
    task-level (cpu units, MiB).
    """
    target = target_container(td, container)
    variables = parse_env(env or [])
    by_name: dict[str, ContainerOverride] = {}
    if command:
        by_name[target] = ContainerOverride(name=target, command=list(command))
    if variables:
        names = [c.name for c in td.container_definitions if container in (None, c.name)]
        for name in names:
            current = by_name.get(name) or ContainerOverride(name=name)
            by_name[name] = current.model_copy(update={"environment": list(variables)})
    ordered = [by_name[c.name] for c in td.container_definitions if c.name in by_name]
    return TaskOverride(container_overrides=ordered, cpu=cpu, memory=memory)


def shrink_warnings(td: TaskDefinition, overrides: TaskOverride) -> list[str]:
    """Where ``--cpu``/``--memory`` give less than the definition (shown with --allow-shrink)."""
    out = []
    if overrides.cpu is not None and td.cpu is not None and overrides.cpu < td.cpu:
        out.append(f"--cpu {overrides.cpu} is less than {td.arn}'s {td.cpu} cpu units")
    if overrides.memory is not None and td.memory is not None and overrides.memory < td.memory:
        out.append(f"--memory {overrides.memory} MiB is less than {td.arn}'s {td.memory} MiB")
    return out


def placement_options(
    constraints: list[str], distinct_instance: bool, strategies: list[str]
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """``--constraint EXPR`` (memberOf), ``--distinct-instance`` and ``--strategy
    TYPE[:FIELD]`` (``binpack:memory``, ``spread:attribute:zone``, ``random``) as the
    API's ``placementConstraints`` and ``placementStrategy`` (the server validates them)."""
    out_c = [{"type": "memberOf", "expression": e} for e in constraints]
    if distinct_instance:
        out_c.append({"type": "distinctInstance"})
    out_s: list[dict[str, str]] = []
    for text in strategies:
        kind, sep, fld = text.partition(":")
        out_s.append({"type": kind, "field": fld} if sep else {"type": kind})
    return out_c, out_s
