"""The small contract every driver implements.

A driver starts one container at a time and reports how it ended. Its ``Handle`` is plain
JSON-able data saved in the store, so a restarted control plane can ``recover`` the container
and keep waiting for it. Logs go to ``spec.log_path`` as framed records
(``hatoba.logs.records``) written by the driver's side, never by the control plane, so nothing
is lost while the control plane is down.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class Ulimit:
    name: str  # ECS names: nofile, nproc, core, memlock, stack, ...
    soft: int
    hard: int


@dataclass(frozen=True)
class ContainerSpec:
    """Everything needed to start one container, fully resolved (env merged, secrets injected)."""

    task_id: str
    name: str
    argv: Sequence[str]  # entryPoint + command, already joined; non-empty
    env: Mapping[str, str]
    state_dir: Path  # the driver's own files for this container (created by the driver)
    log_path: Path  # framed log records of stdout/stderr
    cwd: str | None = None
    user: str | None = None  # "uid", "uid:gid", "name", "name:group"
    cpu: int = 0  # cpu units, 1024 = one core; 0 = no limit
    cpu_limit: int | None = None  # hard cpu cap in cpu units (the task-level cpu); None = none
    memory: int | None = None  # hard limit, MiB
    memory_reservation: int | None = None  # soft limit, MiB
    ulimits: Sequence[Ulimit] = ()
    stop_signal: str = "SIGTERM"
    stop_timeout: float = 30.0
    image: str | None = None
    max_line_bytes: int = 1024 * 1024
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ExitStatus:
    """How a container ended.

    ``exit_code`` follows the shell convention: 128+N when killed by signal N.
    ``reason`` is an ECS-style string such as
    ``OutOfMemoryError: Container killed due to memory usage``.
    """

    exit_code: int | None
    signal: int | None = None
    oom_killed: bool = False
    reason: str | None = None


class StartError(Exception):
    """The container could not be started. ``reason`` is shown as the container's reason,
    e.g. ``CannotStartContainerError: exec: "foo": executable file not found in $PATH``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


Handle = dict[str, Any]


@dataclass(frozen=True)
class ExecSpec:
    """A command to run inside a running container's environment (``hatoba exec``,
    health checks)."""

    argv: Sequence[str]
    tty: bool = False
    env: Mapping[str, str] | None = None  # None: the container's own env


class Driver(Protocol):
    name: str

    async def start(self, spec: ContainerSpec) -> Handle:
        """Start the container; return once it is running (exec succeeded).

        Raises StartError when it could not start."""
        ...

    async def wait(self, handle: Handle) -> ExitStatus:
        """Wait until the container has exited and its logs are durably written."""
        ...

    async def stop(self, handle: Handle, signal: str, timeout: float) -> None:
        """Send ``signal`` to every process of the container, then SIGKILL after ``timeout``
        seconds if anything is left. Returns when the signal(s) are sent; ``wait`` reports
        the exit."""
        ...

    async def destroy(self, handle: Handle) -> None:
        """Release resources (cgroups, state files except logs) of an exited container."""
        ...

    async def recover(self, handle: Handle) -> bool:
        """After a control-plane restart: is this container still known to the driver?

        True when it is running or has exited with a recorded status (``wait`` then returns
        it); False when it is gone without a trace (the task is lost)."""
        ...

    async def find(self, spec: ContainerSpec) -> Handle | None:
        """A container this driver already started for ``spec`` (same task and name) whose
        handle the control plane never saved, e.g. it died right after starting it; None
        when there is none. Lets the agent adopt instead of starting a second copy."""
        ...

    def is_running(self, handle: Handle) -> bool:
        """Cheap, synchronous check that the container has not exited yet."""
        ...

    async def exec_process(
        self, handle: Handle, spec: ContainerSpec, exec_spec: ExecSpec
    ) -> ExecProcess:
        """Start a command inside the container's environment (same env, cwd, user, cgroup)."""
        ...


class ExecProcess(Protocol):
    """A running exec'd command. With a TTY, output comes on ``stdout`` only."""

    pid: int

    async def write_stdin(self, data: bytes) -> None: ...

    async def close_stdin(self) -> None: ...

    async def read_output(self) -> tuple[int, bytes] | None:
        """Next chunk as (stream, bytes), stream 1 = stdout, 2 = stderr; None at end."""
        ...

    async def resize(self, rows: int, cols: int) -> None: ...

    async def wait(self) -> int:
        """Exit code (128+N when killed by signal N)."""
        ...

    async def kill(self) -> None: ...
