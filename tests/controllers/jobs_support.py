"""Helpers for job scheduler tests: a real store with one node and a task definition, fake
time, a stand-in for the agent (tasks are finished by hand), and a schedule firing every N
seconds (the precision tests' hook)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from hatoba.controllers.job_loop import JobLoopSettings, JobScheduler
from hatoba.controllers.jobs import Jobs
from hatoba.controllers.task_updates import mutate_task
from hatoba.controllers.tasks import Tasks
from hatoba.model.clock import FakeClock
from hatoba.model.job import Job, JobRun, JobSpec
from hatoba.model.schedule import EPOCH, Schedule, parse_schedule
from hatoba.model.task import LastStatus, StopCode, Task
from hatoba.store.sql import SqlStore
from tests.store.conftest import make_node, make_taskdef

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday, on the hour


@dataclass(frozen=True, kw_only=True)
class EverySeconds(Schedule):
    """``every(N)``: fires at every multiple of N seconds since the epoch."""

    seconds: int
    kind: ClassVar[str] = "every"

    def next_after(self, after: datetime) -> datetime | None:
        steps = int((after - EPOCH).total_seconds() // self.seconds)
        return EPOCH + timedelta(seconds=(steps + 1) * self.seconds)


def parse_with_seconds(expression: str, timezone: str) -> Schedule:
    """``parse_schedule`` plus ``every(N)`` (seconds), for tests and benchmarks."""
    if expression.startswith("every(") and expression.endswith(")"):
        return EverySeconds(expression, timezone, seconds=int(expression[6:-1]))
    return parse_schedule(expression, timezone, "schedule", timezone_path="timezone")


@dataclass
class Env:
    store: SqlStore
    clock: FakeClock
    stores: list[SqlStore] = field(default_factory=list)

    def tasks(self, store: SqlStore | None = None) -> Tasks:
        return Tasks(store or self.store, self.clock)

    def jobs(self, store: SqlStore | None = None) -> Jobs:
        return Jobs(store or self.store, self.clock, self.tasks(store), parse=parse_with_seconds)

    def scheduler(
        self,
        holder: str = "cp-a",
        store: SqlStore | None = None,
        tasks: Tasks | None = None,
        **settings: Any,
    ) -> JobScheduler:
        s = store or self.store
        settings.setdefault("lease_ttl", 0.3)
        return JobScheduler(
            s,
            self.clock,
            tasks or self.tasks(s),
            holder=holder,
            settings=JobLoopSettings(**settings),
            parse=parse_with_seconds,
            rand=lambda: 1.0,  # backoff = its ceiling: deterministic
        )

    async def create(self, name: str = "report", **spec: Any) -> Job:
        spec.setdefault("task_definition", "report")
        return await self.jobs().create(JobSpec(job_name=name, **spec))

    async def runs(self, name: str = "report") -> list[JobRun]:
        """Oldest first."""
        return list(reversed(await self.store.list_job_runs(name, limit=10_000)))

    async def job_tasks(self, name: str = "report") -> list[Task]:
        """Oldest first."""
        tasks = await self.store.list_tasks(group=f"job:{name}")
        return sorted(tasks, key=lambda t: (t.created_at, t.task_id))

    async def finish(
        self,
        task_id: str,
        exit_code: int | None = 0,
        stop_code: StopCode = StopCode.ESSENTIAL_CONTAINER_EXITED,
    ) -> Task:
        """What the agent does when a task's process exits."""
        now = self.clock.now()

        def change(t: Task) -> Task:
            t.last_status = LastStatus.STOPPED
            t.stop_code = stop_code
            t.stopped_reason = "Essential container in task exited"
            t.started_at = t.started_at or now
            t.stopped_at = t.execution_stopped_at = now
            for c in t.containers:
                c.exit_code = exit_code
            return t

        return await mutate_task(self.store, task_id, change)

    async def advance(self, seconds: float) -> None:
        await self.clock.advance(seconds)


async def open_env(url: str, node_memory: int = 4096) -> Env:
    store = SqlStore(url, poll_interval=0.05)
    await store.migrate()
    if not await store.list_nodes():
        await store.put_node(make_node("node-1").model_copy(update={"memory": node_memory}))
        await store.register_task_definition(make_taskdef("report"))
        await store.register_task_definition(make_taskdef("cleanup"))
        await store.register_task_definition(make_taskdef("alert"))
    return Env(store, FakeClock(T0), [store])


async def until(
    check: Callable[[], Awaitable[bool]], timeout: float = 10, what: str = "condition"
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def running(scheduler: JobScheduler) -> AsyncIterator[asyncio.Task[None]]:
    """The scheduler's ``run()`` in the background, leading once this yields."""
    task = asyncio.create_task(scheduler.run())
    try:
        await asyncio.wait_for(scheduler.is_leader.wait(), 5)
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
