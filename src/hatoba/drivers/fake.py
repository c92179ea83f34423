"""An in-memory ``Driver`` for controller and agent tests: no processes, full control.

Tests decide how containers end (``exit``), what fails to start (``fail_start``), whether a
container ignores its stop signal (``ignore_stop``) and whether containers survive a
simulated control-plane restart (``forget``). ``stop`` ends a container with 128+signal
(143 for SIGTERM) at once, or 137 after the stop timeout when it ignores the signal; that
wait uses the injected ``sleep`` so tests on fake time stay fast.
"""

from __future__ import annotations

import asyncio
import itertools
import signal as signal_mod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from hatoba.drivers.protocol import (
    ContainerSpec,
    ExecProcess,
    ExecSpec,
    ExitStatus,
    Handle,
    StartError,
)
from hatoba.logs.records import STDOUT, LogRecord


@dataclass
class FakeContainer:
    spec: ContainerSpec
    handle: Handle
    exited: asyncio.Future[ExitStatus]
    ignore_stop: bool = False
    stop_signals: list[str] = field(default_factory=list)
    destroyed: bool = False


class FakeExec:
    """An ``ExecProcess`` that replays a scripted result."""

    def __init__(self, pid: int, exit_code: int, output: bytes) -> None:
        self.pid = pid
        self._exit_code = exit_code
        self._chunks: list[tuple[int, bytes]] = [(STDOUT, output)] if output else []
        self.stdin = bytearray()

    async def write_stdin(self, data: bytes) -> None:
        self.stdin += data

    async def close_stdin(self) -> None:
        return None

    async def read_output(self) -> tuple[int, bytes] | None:
        return self._chunks.pop(0) if self._chunks else None

    async def resize(self, rows: int, cols: int) -> None:
        return None

    async def wait(self) -> int:
        return self._exit_code

    async def kill(self) -> None:
        self._exit_code = 137


class FakeDriver:
    """See the module docstring."""

    name = "fake"

    def __init__(self, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self._sleep = sleep
        self._pids = itertools.count(1000)
        self.containers: dict[str, FakeContainer] = {}  # by "task_id/name"
        self.start_failures: dict[str, str] = {}  # container name -> StartError reason
        self.exec_results: dict[tuple[str, ...], tuple[int, bytes]] = {}
        self._timers: set[asyncio.Task[None]] = set()

    # -- test controls ----------------------------------------------------------------

    def fail_start(self, container_name: str, reason: str) -> None:
        """Make every start of a container with this name raise StartError(reason)."""
        self.start_failures[container_name] = reason

    def container(self, handle_or_key: Handle | str) -> FakeContainer:
        key = handle_or_key if isinstance(handle_or_key, str) else handle_or_key["key"]
        return self.containers[key]

    def exit(
        self,
        handle_or_key: Handle | str,
        exit_code: int | None,
        *,
        signal: int | None = None,
        oom_killed: bool = False,
        reason: str | None = None,
    ) -> None:
        """End a running container with the given status (no-op if already ended)."""
        fut = self.container(handle_or_key).exited
        if not fut.done():
            fut.set_result(ExitStatus(exit_code, signal, oom_killed, reason))

    def write_log(self, handle_or_key: Handle | str, data: bytes, stream: int = STDOUT) -> None:
        """Append one framed record to the container's log, as the shim would."""
        c = self.container(handle_or_key)
        c.spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        with c.spec.log_path.open("ab") as f:
            f.write(LogRecord(0, stream, data).encode())

    def forget(self) -> None:
        """Simulate a host reboot: every container is gone without a trace."""
        for timer in self._timers:
            timer.cancel()
        self.containers.clear()

    # -- Driver -----------------------------------------------------------------------

    async def start(self, spec: ContainerSpec) -> Handle:
        if spec.name in self.start_failures:
            raise StartError(self.start_failures[spec.name])
        key = f"{spec.task_id}/{spec.name}"
        handle: Handle = {"driver": self.name, "key": key, "pid": next(self._pids)}
        exited: asyncio.Future[ExitStatus] = asyncio.get_running_loop().create_future()
        self.containers[key] = FakeContainer(spec, handle, exited)
        return handle

    async def wait(self, handle: Handle) -> ExitStatus:
        return await asyncio.shield(self.container(handle).exited)

    async def stop(self, handle: Handle, signal: str, timeout: float) -> None:
        c = self.container(handle)
        c.stop_signals.append(signal)
        if c.exited.done():
            return
        if not c.ignore_stop:
            sig = signal_mod.Signals[signal if signal.startswith("SIG") else "SIG" + signal]
            self.exit(handle, 128 + sig.value, signal=sig.value)
            return
        timer = asyncio.create_task(self._kill_after(handle, timeout))
        self._timers.add(timer)
        timer.add_done_callback(self._timers.discard)

    async def _kill_after(self, handle: Handle, delay: float) -> None:
        await self._sleep(delay)
        self.exit(handle, 137, signal=signal_mod.SIGKILL.value)

    async def destroy(self, handle: Handle) -> None:
        self.container(handle).destroyed = True

    async def recover(self, handle: Handle) -> bool:
        return handle["key"] in self.containers

    async def find(self, spec: ContainerSpec) -> Handle | None:
        c = self.containers.get(f"{spec.task_id}/{spec.name}")
        return None if c is None else c.handle

    def is_running(self, handle: Handle) -> bool:
        c = self.containers.get(handle["key"])
        return c is not None and not c.exited.done()

    async def exec_process(
        self, handle: Handle, spec: ContainerSpec, exec_spec: ExecSpec
    ) -> ExecProcess:
        if not self.is_running(handle):
            raise StartError(f"CannotStartContainerError: container {spec.name} is not running")
        code, output = self.exec_results.get(tuple(exec_spec.argv), (0, b""))
        return FakeExec(next(self._pids), code, output)
