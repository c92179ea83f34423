"""The job scheduler: fires ticks on time, exactly once, and carries runs to their end.

Only the control plane holding the ``job-scheduler`` lease acts (leader election through the
store, the service scheduler's pattern); the unique (job, tick) claim in the store is the
second line of defence, so even two schedulers that both believe they lead start a tick once.

Level-triggered, one job at a time (jobs in parallel). A pass over a job (``reconcile``)
re-reads it and its active runs from the store and:

1. moves each active run forward (``job_runs.RunOps.progress``): records a task launched
   before a crash, finishes an attempt whose task STOPPED (retry with backoff, chain,
   notify), launches a due retry, or a manual / chained run waiting to start;
2. plans the schedule's due ticks since the job's watermark (``job_plan.plan_ticks``:
   missed-run policy, starting deadline, cap), applies the overlap policy against the
   active runs, claims each tick durably (a SKIPPED run records why one did not start),
   launches the started ones, and moves the watermark (``lastTick``);
3. sets the job's next wake-up: its next fire time or retry, whichever is first.

Wake-ups come from one timer (a heap of per-job times, sleeping on the injected clock exactly
until the earliest, never polling), the change feed (job edits, manual runs, tasks of
``job:*`` groups stopping) and a full resync every ``resync`` seconds that only re-reads the
job list and wakes the jobs that are due. The webhook delivery worker and the history
housekeeping run beside the loop, under the same lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from hatoba.controllers.job_notify import Deliveries, DeliverySettings
from hatoba.controllers.job_plan import fire_time, plan_ticks, start_of
from hatoba.controllers.job_runs import RunOps, new_run_id
from hatoba.controllers.leadership import LeaderLease, Role, follow_changes
from hatoba.controllers.tasks import Tasks
from hatoba.model.clock import Clock
from hatoba.model.errors import Conflict, ValidationFailed
from hatoba.model.job import (
    JOB_GROUP_PREFIX,
    Job,
    JobAttempt,
    JobRun,
    OverlapPolicy,
    RunStatus,
    RunTrigger,
)
from hatoba.model.schedule import Schedule, parse_schedule
from hatoba.model.task import LastStatus, Task
from hatoba.store.protocol import Change, Store
from hatoba.supervise import Supervisor

log = logging.getLogger("hatoba.jobs")
LEASE = "job-scheduler"
# renewals on the injected clock, like the lease's expiry (which the store compares with
# the clock's time), so fake time in tests moves both
ROLE = Role(LEASE, "the job scheduler", "jobs", log, on_clock=True)
NOTIFICATION_RETENTION = timedelta(days=7)

ScheduleParser = Callable[[str, str], Schedule]


def _parse(expression: str, timezone: str) -> Schedule:
    return parse_schedule(expression, timezone)


@dataclass(frozen=True)
class JobLoopSettings:
    lease_ttl: float = 15.0  # seconds a leader's lease lasts without renewal
    resync: float = 300.0  # seconds between full passes over the job list
    workers: int = 8  # jobs reconciled at once
    housekeeping: float = 3600.0  # seconds between history purges
    delivery: DeliverySettings = field(default_factory=DeliverySettings)


class JobScheduler:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        tasks: Tasks,
        *,
        holder: str,
        settings: JobLoopSettings | None = None,
        parse: ScheduleParser = _parse,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._store = store
        self._clock = clock
        self.holder = holder
        self.settings = settings or JobLoopSettings()
        # the schedule parser: tests and benchmarks install one that also knows a
        # per-second schedule
        self.parse = parse
        self._schedules: dict[tuple[str, str], Schedule | str] = {}  # or the parse error
        self.deliveries = Deliveries(store, clock, self.settings.delivery, rand=rand)
        self.runs = RunOps(
            store,
            clock,
            tasks,
            holder=holder,
            rand=rand,
            launch_grace=self.settings.lease_ttl,
            on_queued=self.deliveries.poke,
            on_chained=self.mark,
        )
        self._dirty: set[str] = set()
        self._busy: set[str] = set()
        self._wake = asyncio.Event()
        self._timer_heap: list[tuple[datetime, str]] = []
        self._timer_at: dict[str, datetime] = {}
        self._timer_changed = asyncio.Event()
        self._own_versions: dict[str, int] = {}  # job -> version this scheduler wrote
        self._bad_schedule_reported: set[tuple[str, int]] = set()
        self._lease = LeaderLease(store, clock, ROLE, holder, self.settings.lease_ttl)
        self.is_leader = self._lease.is_leader
        self.passes = 0  # reconcile passes done (for tests and metrics)

    # -- leadership ------------------------------------------------------------------
    async def run(self) -> None:
        """Run until cancelled: campaign for the lease; while holding it, schedule."""
        await self._lease.run(self._lead, self._stopped)

    def _lead(self, supervisor: Supervisor) -> None:
        supervisor.start(self._watch(), "watch")
        supervisor.start(self._timer(), "timer")
        supervisor.start(self.deliveries.run(), "webhooks")
        supervisor.start(self._housekeeping(), "housekeeping")
        for i in range(self.settings.workers):
            supervisor.start(self._worker(), f"worker-{i}")

    async def _stopped(self) -> None:
        self._timer_heap.clear()
        self._timer_at.clear()

    # -- wake-ups ----------------------------------------------------------------------
    def mark(self, names: Iterable[str]) -> None:
        for name in names:
            self._dirty.add(name)
        self._wake.set()

    def wake_at(self, name: str, at: datetime) -> None:
        """Look at ``name`` again at ``at`` (by the clock); an earlier request wins until
        it has fired."""
        current = self._timer_at.get(name)
        if current is not None and current <= at:
            return
        self._timer_at[name] = at
        heapq.heappush(self._timer_heap, (at, name))
        if self._timer_heap[0] == (at, name):
            self._timer_changed.set()

    async def _timer(self) -> None:
        while True:
            self._timer_changed.clear()
            now = self._clock.now()
            due = []
            while self._timer_heap and self._timer_heap[0][0] <= now:
                at, name = heapq.heappop(self._timer_heap)
                if self._timer_at.get(name) == at:
                    del self._timer_at[name]
                    due.append(name)
            if due:
                self.mark(due)
            delay = None
            if self._timer_heap:
                delay = (self._timer_heap[0][0] - now).total_seconds()
            await self._sleep_or(self._timer_changed, delay)

    async def _sleep_or(self, event: asyncio.Event, seconds: float | None) -> None:
        """Until ``event`` is set or ``seconds`` have passed on the clock."""
        if event.is_set():
            return
        waits: set[asyncio.Future[object]] = {asyncio.ensure_future(event.wait())}
        if seconds is not None:
            waits.add(asyncio.ensure_future(self._clock.sleep(max(0.0, seconds))))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
            for w in waits:
                with contextlib.suppress(asyncio.CancelledError):
                    await w

    async def _watch(self) -> None:
        await follow_changes(self._store, self.settings.resync, self._on_changes, self.resync)

    async def _on_changes(self, changes: Iterable[Change]) -> None:
        names: set[str] = set()
        for change in changes:
            if change.kind == "job":
                job = change.value if isinstance(change.value, Job) else None
                if job is not None and self._own_versions.get(job.job_name) == job.version:
                    continue  # the watermark this scheduler just moved
                names.add(change.key)
            elif change.kind == "jobrun":
                run = change.value if isinstance(change.value, JobRun) else None
                if run is None:
                    run = await self._store.get_job_run(change.key)
                # a manual or chained run waiting for its first launch (ours are launched
                # by the pass that wrote them)
                if run is not None and run.status == RunStatus.PENDING and not run.attempts:
                    names.add(run.job_name)
            elif change.kind == "task":
                task = change.value if isinstance(change.value, Task) else None
                if task is None:
                    task = await self._store.get_task(change.key)
                if (
                    task is not None
                    and task.group is not None
                    and task.group.startswith(JOB_GROUP_PREFIX)
                    and task.last_status == LastStatus.STOPPED
                ):
                    names.add(task.group[len(JOB_GROUP_PREFIX) :])
        if names:
            self.mark(names)

    async def resync(self) -> None:
        """Wake every job with an active run or a tick due; set the timer for the others.
        Cheap: two reads, and schedule arithmetic in memory."""
        jobs = await self._store.list_jobs()
        busy = {r.job_name for r in await self._store.active_job_runs()}
        now = self._clock.now()
        due = []
        for job in jobs:
            at = self._next_fire(job)
            if job.job_name in busy or (at is not None and at <= now):
                due.append(job.job_name)
            elif at is not None:
                self.wake_at(job.job_name, at)
        self.mark(due)

    def _next_fire(self, job: Job) -> datetime | None:
        if not job.enabled or job.schedule is None:
            return None
        schedule = self._schedule(job)
        if isinstance(schedule, str):
            return None
        tick = schedule.next_after(start_of(job))
        return None if tick is None else fire_time(job, tick)

    def _schedule(self, job: Job) -> Schedule | str:
        assert job.schedule is not None
        key = (job.schedule, job.timezone)
        found = self._schedules.get(key)
        if found is None:
            try:
                found = self.parse(job.schedule, job.timezone)
            except ValidationFailed as exc:
                found = "; ".join(str(e) for e in exc.errors)
            if len(self._schedules) > 100_000:
                self._schedules.clear()
            self._schedules[key] = found
        return found

    # -- work --------------------------------------------------------------------------
    async def _worker(self) -> None:
        while True:
            name = self._next()
            if name is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            self._busy.add(name)
            try:
                await self.reconcile(name)
            except Conflict:
                self.mark([name])  # someone wrote in between: go again with fresh state
            except Exception:
                log.exception("reconciling job %s failed", name)
                self.wake_at(name, self._clock.now() + timedelta(seconds=5))
            finally:
                self._busy.discard(name)
                if name in self._dirty:
                    self._wake.set()

    def _next(self) -> str | None:
        for name in self._dirty:
            if name not in self._busy:
                self._dirty.discard(name)
                return name
        return None

    async def reconcile(self, name: str) -> None:
        """One pass over one job (see the module docstring)."""
        self.passes += 1
        job = await self._store.get_job(name)
        active = await self._store.active_job_runs(name)
        if job is None:
            for run in active:  # left behind by a delete racing a launch
                await self.runs.cancel(run, "job deleted")
            return
        wake: list[datetime] = []
        still: list[JobRun] = []
        for found in active:
            run = await self.runs.progress(job, found)
            if run.active:
                still.append(run)
                if run.status == RunStatus.RETRYING and run.next_attempt_at is not None:
                    wake.append(run.next_attempt_at)
                resume = self.runs.resume_at(run)
                if resume is not None:
                    wake.append(resume)
        if job.enabled and job.schedule is not None:
            at = await self._fire_due(job, still)
            if at is not None:
                wake.append(at)
        if wake:
            self.wake_at(name, min(wake))

    async def _fire_due(self, job: Job, active: list[JobRun]) -> datetime | None:
        """Handle the due ticks; returns when the schedule needs a pass next."""
        schedule = self._schedule(job)
        if isinstance(schedule, str):
            if (job.job_name, job.version) not in self._bad_schedule_reported:
                self._bad_schedule_reported.add((job.job_name, job.version))
                await self.runs.events(job.job_name, [f"schedule not used: {schedule}"])
            return None
        now = self._clock.now()
        plan = plan_ticks(job, schedule, now)
        for step in plan.steps:
            reason = step.skip_reason
            if reason is None and job.overlap_policy == OverlapPolicy.FORBID and active:
                ids = ", ".join(r.run_id for r in active)
                reason = f"previous run still running ({ids})"
            run = JobRun(
                run_id=new_run_id(),
                job_name=job.job_name,
                tick=step.tick,
                trigger=RunTrigger.SCHEDULE,
                created_at=now,
            )
            if reason is not None:
                run.status = RunStatus.SKIPPED
                run.reason = reason
                run.finished_at = now
                await self._store.claim_tick(run)
                continue
            run.attempts.append(JobAttempt(started_at=now, launched_by=self.holder))
            claimed = await self._store.claim_tick(run)
            if claimed is None:
                continue  # handled before (a restart, another control plane)
            started = await self.runs.launch(job, claimed)
            if started.active:
                active.append(started)
        if plan.unrecorded:
            await self.runs.events(job.job_name, [plan.unrecorded])
        if plan.watermark is not None:
            await self._advance(job, plan.watermark)
        return plan.next_fire_at

    async def _advance(self, job: Job, mark: datetime) -> None:
        """Move the job's watermark to ``mark`` (compare-and-set). Lost races are fine when
        the winner moved it as far: another scheduler's pass, or an edit that reset it."""
        current: Job | None = job
        for _ in range(20):
            if current is None or start_of(current) >= mark:
                return
            try:
                moved = await self._store.update_job(current.model_copy(update={"last_tick": mark}))
            except Conflict:
                current = await self._store.get_job(job.job_name)
                continue
            self._own_versions[job.job_name] = moved.version
            return
        raise Conflict(f"job {job.job_name}: too many concurrent updates")

    # -- housekeeping ------------------------------------------------------------------
    async def _housekeeping(self) -> None:
        while True:
            try:
                await self.purge_history()
            except Exception:
                log.exception("purging job history failed")
            await self._clock.sleep(self.settings.housekeeping)

    async def purge_history(self) -> int:
        """Delete runs finished longer ago than their job's ``historyRetentionDays``, and
        delivered or abandoned notifications older than a week. Returns runs deleted."""
        now = self._clock.now()
        deleted = 0
        for job in await self._store.list_jobs():
            before = now - timedelta(days=job.history_retention_days)
            deleted += await self._store.delete_job_runs(job.job_name, before)
        await self._store.delete_job_notifications(now - NOTIFICATION_RETENTION)
        return deleted
