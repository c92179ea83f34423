"""CPU and memory utilization per task, as ECS's service CPUUtilization/MemoryUtilization:
the average over the service's running tasks of what each uses, in percent of what it
reserved.

Zero running tasks read as 0 with ``detail.tasks == 0`` (no load is being measured, and
that is a real answer, not a failure); a policy that needs load to scale from zero must use a
backlog metric. A provider that fails raises ``MetricError``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import psutil

from hatoba.scalers.base import (
    MetricError,
    MetricReading,
    Now,
    TaskStatsProvider,
    TaskUsage,
    describe,
    utcnow,
)

CPU_UNITS_PER_CORE = 1024
MIB = 1024 * 1024
# (pid of the task's main process, reserved cpu units or None, reserved memory MiB or None)
TaskProcess = tuple[int, int | None, int | None]


class TaskStatsSource:
    """``cpu`` or ``memory``: the mean over tasks; ``detail``: tasks, min, max."""

    def __init__(self, kind: str, provider: TaskStatsProvider, *, now: Now = utcnow) -> None:
        if kind not in ("cpu", "memory"):
            raise ValueError(f"not a task stats kind: {kind}")
        self.kind = kind
        self._provider = provider
        self._now = now

    async def read(self) -> MetricReading:
        try:
            usage = await self._provider.usage()
        except MetricError:
            raise
        except Exception as exc:
            raise MetricError(f"task {self.kind} stats failed: {describe(exc)}") from exc
        values = [
            u.cpu_percent_of_reservation if self.kind == "cpu" else u.memory_percent_of_reservation
            for u in usage
        ]
        if not values:
            return MetricReading(0.0, self._now(), {"tasks": 0.0})
        mean = sum(values) / len(values)
        detail = {"tasks": float(len(values)), "min": min(values), "max": max(values)}
        return MetricReading(mean, self._now(), detail)

    async def close(self) -> None:
        return None


@dataclass(frozen=True)
class _Sample:
    cpu_seconds: float
    at: float
    created: float  # the root's start time: a reused pid is a different task


class ProcessTaskStats:
    """``TaskStatsProvider`` for tasks that are local process trees (the process driver).

    ``tasks()`` lists each running task as ``(pid, cpu_units, memory_mib)``. CPU is the
    CPU time of the whole tree (live descendants, plus reaped ones through their parents'
    ``children_*`` times) over the wall time since the previous call, as a percentage of the
    reservation (``cpu_units / 1024`` cores; one core when none is reserved). A task seen
    for the first time is sampled twice, ``first_window`` seconds apart. Memory is the tree's
    RSS as a percentage of the reserved MiB (of the machine's memory when none is
    reserved). A task whose process is gone is left out.
    """

    def __init__(
        self,
        tasks: Callable[[], Sequence[TaskProcess]],
        *,
        first_window: float = 0.2,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tasks = tasks
        self._first_window = first_window
        self._monotonic = monotonic
        self._previous: dict[int, _Sample] = {}

    async def usage(self) -> list[TaskUsage]:
        tasks = list(self._tasks())
        pids = {pid for pid, _, _ in tasks}
        self._previous = {pid: s for pid, s in self._previous.items() if pid in pids}
        new = [pid for pid in pids if pid not in self._previous]
        for pid in new:
            measured = self._measure(pid)
            if measured is not None:
                self._previous[pid] = measured[0]
        if new:
            await asyncio.sleep(self._first_window)
        total_memory = psutil.virtual_memory().total
        out: list[TaskUsage] = []
        for pid, cpu_units, memory_mib in tasks:
            before = self._previous.pop(pid, None)
            measured = self._measure(pid)
            if measured is None:
                continue
            now, rss = measured
            self._previous[pid] = now
            if before is None or before.created != now.created:
                continue  # a reused pid: measured from the next call on
            elapsed = now.at - before.at
            busy = max(0.0, now.cpu_seconds - before.cpu_seconds)
            cores = (cpu_units or CPU_UNITS_PER_CORE) / CPU_UNITS_PER_CORE
            cpu = 100.0 * busy / elapsed / cores if elapsed > 0 else 0.0
            reserved = memory_mib * MIB if memory_mib else total_memory
            out.append(TaskUsage(cpu, 100.0 * rss / reserved))
        return out

    def _measure(self, pid: int) -> tuple[_Sample, int] | None:
        """CPU seconds and RSS bytes of the process tree rooted at ``pid``."""
        at = self._monotonic()
        try:
            root = psutil.Process(pid)
            if root.status() == psutil.STATUS_ZOMBIE:
                return None
            created = root.create_time()
            tree = [root, *root.children(recursive=True)]
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None
        cpu = 0.0
        rss = 0
        for proc in tree:
            try:
                with proc.oneshot():
                    t = proc.cpu_times()
                    rss += proc.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue  # a child that just exited: its parent's children_* will show it
            cpu += t.user + t.system + t.children_user + t.children_system
        return _Sample(cpu, at, created), rss
