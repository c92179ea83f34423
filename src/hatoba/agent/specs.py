"""Turning a task definition + the task's overrides into driver ``ContainerSpec``s.

Environment precedence (lowest first), as ECS documents it: the node's base environment,
``environmentFiles`` (in order), ``environment``, run-time override environment, then
``secrets``. hatoba adds HATOBA_TASK_ID, HATOBA_TASK_FAMILY and HATOBA_CONTAINER_NAME, and
when the control plane knows them HATOBA_AGENT_URI (its URL) and HATOBA_TASK_TOKEN (the task's
own secret for the agent endpoint, e.g. task scale-in protection).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from hatoba.drivers.protocol import ContainerSpec, Ulimit
from hatoba.model.errors import HatobaError
from hatoba.model.layout import DataLayout
from hatoba.model.task import Task
from hatoba.model.taskdef import ContainerDefinition, TaskDefinition
from hatoba.model.taskdef_envfile import load_env_file
from hatoba.model.taskdef_logs import DEFAULT_MAX_LINE, log_settings
from hatoba.model.taskdef_overrides import apply_overrides
from hatoba.secrets.protocol import SecretRef

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
INHERITED = ("PATH", "LANG", "LC_ALL", "TZ", "HOME")


class SpecError(HatobaError):
    """The task cannot start: a reason safe to show (never a secret's value)."""


def base_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """What every task starts from: a few of the agent's own variables, not all of them
    (the control plane's environment, tokens included, must not leak into tasks)."""
    environ = os.environ if environ is None else environ
    env = {k: environ[k] for k in INHERITED if k in environ}
    env.setdefault("PATH", DEFAULT_PATH)
    return env


def read_environment_files(container: ContainerDefinition) -> dict[str, str]:
    env: dict[str, str] = {}
    for i, f in enumerate(container.environment_files):
        if f.type != "file":
            raise SpecError(
                f"ResourceInitializationError: container {container.name!r} "
                f"environmentFiles[{i}]: type {f.type!r} is not supported here (use type 'file')"
            )
        try:
            env.update(load_env_file(Path(f.value)))
        except HatobaError as exc:
            raise SpecError(f"ResourceInitializationError: {exc}") from exc
    return env


def secret_refs(container: ContainerDefinition) -> list[SecretRef]:
    return [SecretRef(s.name, s.value_from) for s in container.secrets]


def build_specs(
    td: TaskDefinition,
    task: Task,
    layout: DataLayout,
    *,
    base_env: Mapping[str, str],
    file_env: Mapping[str, Mapping[str, str]],
    secrets: Mapping[str, Mapping[str, str]],
    task_env: Mapping[str, str] | None = None,
    max_line: int = DEFAULT_MAX_LINE,
) -> dict[str, ContainerSpec]:
    """Pure: every container's spec. ``file_env``/``secrets`` are per container name,
    already read/resolved at the edge; ``task_env`` is hatoba's per-task variables
    (HATOBA_AGENT_URI, HATOBA_TASK_TOKEN), set last like HATOBA_TASK_ID. ``max_line`` is
    the node's longest log record, unless the container's ``hatoba-max-line`` says."""
    specs: dict[str, ContainerSpec] = {}
    for eff in apply_overrides(td, task.overrides):
        c = eff.definition
        env = dict(base_env)
        env.update(file_env.get(c.name, {}))
        env.update(eff.environment)
        env.update(secrets.get(c.name, {}))
        env["HATOBA_TASK_ID"] = task.task_id
        env["HATOBA_TASK_FAMILY"] = td.family
        env["HATOBA_CONTAINER_NAME"] = c.name
        env.update(task_env or {})
        specs[c.name] = ContainerSpec(
            task_id=task.task_id,
            name=c.name,
            argv=list(eff.argv),
            env=env,
            state_dir=layout.container_dir(task.task_id, c.name),
            log_path=layout.container_log(task.task_id, c.name),
            cwd=c.working_directory,
            user=c.user,
            cpu=eff.cpu,
            cpu_limit=task.overrides.cpu if task.overrides.cpu is not None else td.cpu,
            memory=eff.memory,
            memory_reservation=eff.memory_reservation,
            ulimits=_ulimits(c),
            stop_signal=c.effective_stop_signal,
            stop_timeout=c.effective_stop_timeout,
            image=c.image,
            max_line_bytes=log_settings(c).max_line or max_line,
        )
    return specs


def _ulimits(c: ContainerDefinition) -> Sequence[Ulimit]:
    return tuple(Ulimit(u.name, u.soft_limit, u.hard_limit) for u in c.ulimits)
