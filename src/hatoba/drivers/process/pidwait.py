"""Wait for any process's exit without polling, even one that is not our child.

``pidfd_open`` + ``loop.add_reader`` works for a shim started by an earlier control-plane
process (after a restart), where ``waitpid`` cannot. Process identity is guarded by the
``starttime`` field of /proc/<pid>/stat, so a recycled pid is never mistaken for the shim.
"""

from __future__ import annotations

import contextlib
import os

from .fdwait import wait_fd


def proc_starttime(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (clock ticks after boot), or None if no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(b")") + 2 :].split()
    return int(fields[19])


def alive(pid: int, starttime: int) -> bool:
    """Is the process that had ``starttime`` still there (zombies count as gone)?"""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    fields = stat[stat.rindex(b")") + 2 :].split()
    return fields[0] not in (b"Z", b"X") and int(fields[19]) == starttime


async def wait_exit(pid: int, starttime: int) -> None:
    """Return once process ``pid`` (started at ``starttime``) has exited."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        # The pidfd pins the process: checking after opening it is free of races.
        if not alive(pid, starttime):
            return
        await wait_fd(fd)
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
