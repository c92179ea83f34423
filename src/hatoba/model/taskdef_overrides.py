"""RunTask overrides applied to a task definition: what each container will actually get.

Pure functions, so the API can reject bad overrides before anything is stored, the CLI can
ask for ``--allow-shrink`` when an override gives less cpu/memory than the definition, and
the agent starts exactly what the scheduler placed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from hatoba.model.errors import FieldError, ValidationFailed
from hatoba.model.task import ContainerOverride, TaskOverride
from hatoba.model.taskdef import (
    ContainerDefinition,
    EnvironmentFile,
    Secret,
    TaskDefinition,
)

SUBJECT = "task overrides"
_AT = "overrides.containerOverrides"


@dataclass(frozen=True)
class EffectiveContainer:
    """One container after overrides. ``definition`` has everything not overridable.

    ``environment`` is the definition's ``environment`` with the override's variables on top;
    environment files and secrets are resolved at start by the agent (they need I/O), with
    the precedence of ``hatoba.model.taskdef_envfile.merge_environment``.
    """

    name: str
    argv: list[str]
    environment: dict[str, str]
    environment_files: list[EnvironmentFile]
    secrets: list[Secret]
    cpu: int
    memory: int | None
    memory_reservation: int | None
    essential: bool
    definition: ContainerDefinition


class Resources(NamedTuple):
    """What a task reserves on a node: cpu units (1024 per core) and MiB."""

    cpu: int
    memory: int


def apply_overrides(
    td: TaskDefinition, overrides: TaskOverride | None = None
) -> list[EffectiveContainer]:
    """Merge ``overrides`` into each container, in definition order.

    Raises ``ValidationFailed`` (paths under ``overrides.``) for an unknown or repeated
    container name, or limits that contradict each other once merged.
    """
    by_name = _resolve(td, overrides)
    out: list[EffectiveContainer] = []
    for c in td.container_definitions:
        o = by_name.get(c.name)
        env = c.environment_dict
        if o is not None:
            env.update({kv.name: kv.value for kv in o.environment})
        out.append(
            EffectiveContainer(
                name=c.name,
                argv=c.argv(o.command if o is not None else None),
                environment=env,
                environment_files=list(c.environment_files),
                secrets=list(c.secrets),
                cpu=o.cpu if o is not None and o.cpu is not None else c.cpu,
                memory=o.memory if o is not None and o.memory is not None else c.memory,
                memory_reservation=(
                    o.memory_reservation
                    if o is not None and o.memory_reservation is not None
                    else c.memory_reservation
                ),
                essential=c.essential,
                definition=c,
            )
        )
    _check_merged(td, overrides, out)
    return out


def reserved_resources(td: TaskDefinition, overrides: TaskOverride | None = None) -> Resources:
    """Task-level cpu/memory if given (override first), else the sum over containers.

    Container memory counts its hard limit, else its reservation, as ECS does.
    """
    containers = apply_overrides(td, overrides)
    cpu = _first(overrides.cpu if overrides else None, td.cpu)
    memory = _first(overrides.memory if overrides else None, td.memory)
    return Resources(
        cpu=cpu if cpu is not None else sum(c.cpu for c in containers),
        memory=(
            memory
            if memory is not None
            else sum(c.memory or c.memory_reservation or 0 for c in containers)
        ),
    )


def shrinks(td: TaskDefinition, overrides: TaskOverride | None) -> list[FieldError]:
    """Overrides that give less cpu or memory than the definition (task or container level).

    Adding a hard ``memory`` limit to a container that has none counts too: it can only make
    the container run out of memory sooner. Raises like ``apply_overrides`` on unknown names.
    """
    if overrides is None:
        return []
    _resolve(td, overrides)
    out: list[FieldError] = []
    _less(out, "overrides.cpu", overrides.cpu, td.cpu, "cpu units")
    _less(out, "overrides.memory", overrides.memory, td.memory, "MiB")
    for i, o in enumerate(overrides.container_overrides):
        c = td.container(o.name)
        at = f"{_AT}[{i}]"
        _less(out, f"{at}.cpu", o.cpu, c.cpu, "cpu units")
        _less(out, f"{at}.memoryReservation", o.memory_reservation, c.memory_reservation, "MiB")
        if o.memory is not None and c.memory is None:
            out.append(
                FieldError(
                    f"{at}.memory",
                    f"adds a hard limit of {o.memory} MiB where the definition has none",
                )
            )
        else:
            _less(out, f"{at}.memory", o.memory, c.memory, "MiB")
    return out


def _less(out: list[FieldError], path: str, new: int | None, old: int | None, unit: str) -> None:
    if new is not None and old is not None and new < old:
        out.append(FieldError(path, f"{new} {unit} is less than the definition's {old} {unit}"))


def _first(*values: int | None) -> int | None:
    return next((v for v in values if v is not None), None)


def _resolve(td: TaskDefinition, overrides: TaskOverride | None) -> dict[str, ContainerOverride]:
    if overrides is None:
        return {}
    names = {c.name for c in td.container_definitions}
    by_name: dict[str, ContainerOverride] = {}
    errors: list[FieldError] = []
    for i, o in enumerate(overrides.container_overrides):
        if o.name not in names:
            errors.append(
                FieldError(
                    f"{_AT}[{i}].name",
                    f"no container named {o.name!r} in {td.arn} "
                    f"(containers: {', '.join(sorted(names))})",
                )
            )
        elif o.name in by_name:
            errors.append(FieldError(f"{_AT}[{i}].name", f"{o.name!r} is overridden twice"))
        by_name.setdefault(o.name, o)
    if errors:
        raise ValidationFailed(errors, SUBJECT)
    return by_name


def _check_merged(
    td: TaskDefinition, overrides: TaskOverride | None, merged: list[EffectiveContainer]
) -> None:
    """The definition's limit rules, re-checked on the merged values."""
    if overrides is None:
        return
    errors: list[FieldError] = []
    index = {o.name: i for i, o in enumerate(overrides.container_overrides)}
    for c in merged:
        too_big = c.memory is not None and (c.memory_reservation or 0) > c.memory
        if too_big and c.name in index:
            errors.append(
                FieldError(
                    f"{_AT}[{index[c.name]}].memoryReservation",
                    f"must be ≤ memory ({c.memory} MiB)",
                )
            )
    memory = _first(overrides.memory, td.memory)
    wanted = [c.memory or c.memory_reservation for c in merged]
    if memory is not None and any(w is not None for w in wanted):
        total = sum(w or 0 for w in wanted)
        if total > memory:
            errors.append(
                FieldError(
                    "overrides.memory",
                    f"containers need {total} MiB, more than the task's {memory} MiB",
                )
            )
    cpu = _first(overrides.cpu, td.cpu)
    if cpu is not None and sum(c.cpu for c in merged) > cpu:
        errors.append(
            FieldError(
                "overrides.cpu",
                f"containers reserve {sum(c.cpu for c in merged)} cpu units, "
                f"more than the task's {cpu}",
            )
        )
    if errors:
        raise ValidationFailed(errors, SUBJECT)
