"""``hatoba exec`` and health-check commands running inside a container's environment.

The command is started through ``hatoba-shim exec`` (joins the container's cgroups, drops to
its user, chdirs, execs in place). Output is read without threads: the pipe or pty master
descriptors are non-blocking and watched with ``loop.add_reader``; the exit is awaited on a
pidfd. Reading pauses while ``MAX_QUEUED`` chunks wait unread, so a slow consumer does not
make the control plane buffer unbounded output.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import fcntl
import os
import signal
import struct
import subprocess
import termios
from collections.abc import Mapping, Sequence

from .fdwait import wait_fd
from .pidwait import proc_starttime, wait_exit

READ_SIZE = 64 * 1024
MAX_QUEUED = 64


class ShimExec:
    """An ``ExecProcess`` backed by a child process; see the module docstring."""

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        outputs: Mapping[int, int],
        stdin_fd: int | None,
        master_fd: int | None,
    ) -> None:
        self._popen = popen
        self.pid = popen.pid
        self._starttime = proc_starttime(popen.pid) or 0
        self._loop = asyncio.get_running_loop()
        self._outputs = dict(outputs)  # fd -> stream number
        self._paused: set[int] = set()
        self._stdin_fd = stdin_fd
        self._master_fd = master_fd
        self._chunks: collections.deque[tuple[int, bytes]] = collections.deque()
        self._ready = asyncio.Event()
        self._returncode: int | None = None
        for fd in self._outputs:
            os.set_blocking(fd, False)
            self._loop.add_reader(fd, self._on_readable, fd)
        if stdin_fd is not None:
            os.set_blocking(stdin_fd, False)

    def _on_readable(self, fd: int) -> None:
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:  # EIO: the pty's other side is closed
            if exc.errno != errno.EIO:
                raise
            data = b""
        if data:
            self._chunks.append((self._outputs[fd], data))
            if len(self._chunks) >= MAX_QUEUED:
                self._loop.remove_reader(fd)
                self._paused.add(fd)
        else:
            self._close_output(fd)
        self._ready.set()

    def _close_output(self, fd: int) -> None:
        self._loop.remove_reader(fd)
        self._paused.discard(fd)
        del self._outputs[fd]
        if fd == self._master_fd:
            self._master_fd = self._stdin_fd = None
        os.close(fd)

    async def read_output(self) -> tuple[int, bytes] | None:
        while not self._chunks:
            if not self._outputs:
                return None
            self._ready.clear()
            await self._ready.wait()
        chunk = self._chunks.popleft()
        for fd in list(self._paused):
            self._paused.discard(fd)
            self._loop.add_reader(fd, self._on_readable, fd)
        return chunk

    async def write_stdin(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._stdin_fd is None:
                raise BrokenPipeError("stdin is closed")
            try:
                view = view[os.write(self._stdin_fd, view) :]
            except BlockingIOError:
                await wait_fd(self._stdin_fd, write=True)

    async def close_stdin(self) -> None:
        if self._master_fd is not None:
            await self.write_stdin(b"\x04")  # a tty has no EOF of its own: send ^D
        elif self._stdin_fd is not None:
            os.close(self._stdin_fd)
            self._stdin_fd = None

    async def resize(self, rows: int, cols: int) -> None:
        if self._master_fd is not None:
            size = struct.pack("HHHH", rows, cols, 0, 0)
            fcntl.ioctl(self._master_fd, termios.TIOCSWINSZ, size)

    async def wait(self) -> int:
        if self._returncode is None:
            await wait_exit(self.pid, self._starttime)
            code = self._popen.wait()
            self._returncode = 128 - code if code < 0 else code
        return self._returncode

    async def kill(self) -> None:
        if self._popen.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)


def spawn_exec(shim_argv: Sequence[str], env: Mapping[str, str], tty: bool) -> ShimExec:
    """Start ``hatoba-shim exec ...`` in its own session, wired to pipes or a new pty."""
    if tty:
        master, slave = os.openpty()
        try:
            popen = subprocess.Popen(
                list(shim_argv),
                stdin=slave,
                stdout=slave,
                stderr=slave,
                env=dict(env),
                start_new_session=True,
            )
        finally:
            os.close(slave)
        return ShimExec(popen, {master: 1}, master, master)
    popen = subprocess.Popen(
        list(shim_argv),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(env),
        start_new_session=True,
    )
    assert popen.stdin and popen.stdout and popen.stderr
    fds = {os.dup(popen.stdout.fileno()): 1, os.dup(popen.stderr.fileno()): 2}
    stdin_fd = os.dup(popen.stdin.fileno())
    for f in (popen.stdin, popen.stdout, popen.stderr):
        f.close()
    return ShimExec(popen, fds, stdin_fd, None)
