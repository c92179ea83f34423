"""Moving one job run forward: launch an attempt, record its task, finish it (retry, chain,
notify), cancel it. Used by the job scheduler (``job_loop``) and, for cancel, by ``Jobs``.

The launch protocol makes a crash at any point safe:

1. the run is stored with an in-flight attempt (``taskId`` None) *before* the task exists
   (a scheduled run is claimed that way in one insert);
2. ``Tasks.run`` creates the task with ``startedBy`` = the run id;
3. the attempt's ``taskId`` is recorded (compare-and-set), the run is RUNNING.

A run found at 1 or 2 (in-flight attempt, no ``taskId``) is resumed by looking for a task
started by the run that no attempt records: if there is one it is recorded, and only if there
is none is the task launched. Such an attempt is resumed only once it is ``launch_grace``
old (the lease ttl): a live launcher records its task within milliseconds, and a new leader
takes over only after the old one's lease expired, so a resume never runs next to a live
launch (another control plane's, or this process's own from before it lost and took back the
lease, whose database call may still commit). If step 3 finds the run changed (cancelled, or
recorded by another control plane), the task just launched is stopped, so a run never keeps
two tasks for one attempt.

Every run transition, with the chained runs it starts and the notifications it queues, is one
store write (``update_job_run``): all of it happens, or none.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from hatoba.controllers.job_notify import notifications_for, status_events
from hatoba.controllers.job_plan import (
    AttemptEnd,
    attempt_end,
    backoff_delay,
    failure_reason,
    fire_time,
)
from hatoba.controllers.tasks import RunTaskRequest, Tasks
from hatoba.model.clock import Clock
from hatoba.model.errors import Conflict, NotFound, ValidationFailed
from hatoba.model.job import (
    Job,
    JobAttempt,
    JobEvent,
    JobNotification,
    JobRun,
    NotificationEvent,
    OverlapPolicy,
    RunStatus,
    RunTrigger,
)
from hatoba.model.task import LastStatus, StopCode, Task
from hatoba.store.protocol import Store

log = logging.getLogger("hatoba.jobs")
CAS_ATTEMPTS = 20
_state = {"last": 0}  # the last microsecond value handed out by new_run_id


def new_run_id() -> str:
    """``jr-`` + microseconds since the epoch (14 hex digits, increasing within a process)
    + 6 random hex digits: run ids sort by creation time, which history pages rely on."""
    micros = max(time.time_ns() // 1000, _state["last"] + 1)
    _state["last"] = micros
    return f"jr-{micros:014x}{secrets.token_hex(3)}"


@dataclass
class Transition:
    """One compare-and-set write of a run, with what goes with it."""

    run: JobRun
    new_runs: list[JobRun] = field(default_factory=list)
    notes: list[JobNotification] = field(default_factory=list)


async def mutate_run(
    store: Store, run: JobRun, change: Callable[[JobRun], Transition | None]
) -> JobRun:
    """Apply ``change`` to the freshest copy (None: nothing to do) and store it, re-reading
    and re-applying on conflict."""
    current = run
    for _ in range(CAS_ATTEMPTS):
        step = change(current.model_copy(deep=True))
        if step is None:
            return current
        try:
            return await store.update_job_run(
                step.run, new_runs=step.new_runs, notifications=step.notes
            )
        except Conflict:
            fresh = await store.get_job_run(run.run_id)
            if fresh is None:
                raise NotFound(f"job run {run.run_id} not found") from None
            current = fresh
    raise Conflict(f"job run {run.run_id}: too many concurrent updates")


def _finish(run: JobRun, status: RunStatus, reason: str | None, now: datetime) -> None:
    run.status = status
    run.reason = reason
    run.finished_at = now
    run.next_attempt_at = None


class RunOps:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        tasks: Tasks,
        *,
        holder: str,
        rand: Callable[[], float],
        launch_grace: float = 15.0,
        on_queued: Callable[[], None] = lambda: None,
        on_chained: Callable[[list[str]], None] = lambda names: None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._tasks = tasks
        self.holder = holder
        self.launch_grace = timedelta(seconds=launch_grace)
        self._rand = rand
        self._on_queued = on_queued  # notifications were queued: wake the delivery worker
        self._on_chained = on_chained  # chained runs were created: look at those jobs

    # -- progress ------------------------------------------------------------------------
    async def progress(self, job: Job, run: JobRun) -> JobRun:
        """Move an active run forward as far as it can go now."""
        last = run.attempts[-1] if run.attempts else None
        if last is not None and last.in_flight:
            if last.task_id is None:
                return await self.resume_launch(job, run)
            task = await self._store.get_task(last.task_id)
            if task is None:
                end = AttemptEnd("failure", None, StopCode.LOST.value, "the task record is gone")
            elif task.last_status != LastStatus.STOPPED:
                return run
            else:
                end = attempt_end(task)
            run = await self.finish_attempt(job, run, last.task_id, end)
            if run.status != RunStatus.RETRYING:
                return run
        due = run.next_attempt_at
        if run.status == RunStatus.RETRYING and due is not None and due > self._clock.now():
            return run
        return await self.start_attempt(job, run)

    async def start_attempt(self, job: Job, run: JobRun) -> JobRun:
        """Record a new in-flight attempt, then launch it (unless another scheduler's
        attempt got in first: that one is its launcher's)."""
        now = self._clock.now()
        mine = False

        def change(r: JobRun) -> Transition | None:
            nonlocal mine
            mine = False
            if not r.active or (r.attempts and r.attempts[-1].in_flight):
                return None
            r.attempts.append(JobAttempt(started_at=now, launched_by=self.holder))
            r.next_attempt_at = None
            mine = True
            return Transition(r)

        stored = await mutate_run(self._store, run, change)
        if not mine:
            return stored
        return await self.launch(job, stored)

    def resume_at(self, run: JobRun) -> datetime | None:
        """When an in-flight attempt without a task may be resumed by this scheduler."""
        last = run.attempts[-1] if run.attempts else None
        if last is None or not last.in_flight or last.task_id is not None:
            return None
        return last.started_at + self.launch_grace

    async def resume_launch(self, job: Job, run: JobRun) -> JobRun:
        """An in-flight attempt without a task id, found after a crash (or while another
        scheduler launches it): once it may be resumed, record the task it may have
        started, else launch it."""
        at = self.resume_at(run)
        if at is not None and at > self._clock.now():
            return run  # its launcher may be at work: look again at ``resume_at``
        known = set(run.task_ids)
        orphans = [
            t for t in await self._store.list_tasks(started_by=run.run_id) if t.task_id not in known
        ]
        if orphans:
            log.info("run %s: recording task %s launched before a restart", run.run_id, orphans[0])
            return await self._record_task(job, run, orphans[0])
        return await self.launch(job, run)

    # -- launch --------------------------------------------------------------------------
    async def launch(self, job: Job, run: JobRun) -> JobRun:
        """Launch the task of ``run``'s in-flight attempt (stored, ``taskId`` None)."""
        if (
            job.overlap_policy == OverlapPolicy.REPLACE
            and run.trigger == RunTrigger.SCHEDULE
            and not run.task_ids
        ):
            await self.replace_older(job, run)
        req = RunTaskRequest(
            task_definition=job.task_definition,
            overrides=job.overrides,
            started_by=run.run_id,
            group=job.group,
            timeout_seconds=job.timeout_seconds,
        )
        try:
            result = await self._tasks.run(req)
        except (ValidationFailed, NotFound) as exc:
            return await self._launch_failed(job, run, str(exc).replace("\n", " "), False)
        if not result.tasks:
            failure = result.failures[0] if result.failures else None
            what = f"{failure.reason} ({failure.detail})" if failure else "no node"
            return await self._launch_failed(job, run, what, True)
        return await self._record_task(job, run, result.tasks[0])

    async def _record_task(self, job: Job, run: JobRun, task: Task) -> JobRun:
        now = self._clock.now()

        def change(r: JobRun) -> Transition | None:
            last = r.attempts[-1] if r.attempts else None
            if not r.active or last is None or not last.in_flight or last.task_id is not None:
                return None
            last.task_id = task.task_id
            r.status = RunStatus.RUNNING
            r.reason = None
            notes = []
            if r.task_attempts == 1:
                notes = notifications_for(job, r, [NotificationEvent.START], now)
            return Transition(r, notes=notes)

        stored = await mutate_run(self._store, run, change)
        if task.task_id not in stored.task_ids:
            # cancelled meanwhile, or another control plane recorded its own task
            await self._stop_quietly(
                task.task_id, f"run {run.run_id} no longer wants this task", StopCode.USER_INITIATED
            )
        elif stored.task_attempts == 1 and job.notifications:
            self._on_queued()
        return stored

    async def _launch_failed(self, job: Job, run: JobRun, message: str, retryable: bool) -> JobRun:
        now = self._clock.now()
        deadline = timedelta(seconds=job.starting_deadline_seconds)
        start_by = (fire_time(job, run.tick) if run.tick else run.created_at) + deadline
        chained, problems = await self._chain(job, succeeded=False)

        def change(r: JobRun) -> Transition | None:
            last = r.attempts[-1] if r.attempts else None
            if not r.active or last is None or not last.in_flight or last.task_id is not None:
                return None
            last.launch_failure = message
            last.stopped_at = now
            failures = 0
            for a in reversed(r.attempts):
                if a.launch_failure is None:
                    break
                failures += 1
            delay = backoff_delay(job.retry, failures, self._rand())
            if retryable and now + timedelta(seconds=delay) <= start_by:
                r.status = RunStatus.RETRYING
                r.reason = f"waiting for capacity: {message}"
                r.next_attempt_at = now + timedelta(seconds=delay)
                return Transition(r)
            if retryable:
                reason = f"could not be placed within the starting deadline: {message}"
            else:
                reason = f"could not launch: {message}"
            _finish(r, RunStatus.FAILED, reason, now)
            return self._ended(job, r, chained, now)

        return await self._chain_notice(job, await mutate_run(self._store, run, change), problems)

    async def _chain_notice(self, job: Job, run: JobRun, problems: list[str]) -> JobRun:
        """Say why chained jobs were left out, once the run has ended (a run that will be
        retried would not have chained yet), then wake whoever the run concerns."""
        if problems and run.status in (RunStatus.SUCCEEDED, RunStatus.FAILED):
            await self.events(job.job_name, problems)
        return await self._after(job, run)

    # -- finish --------------------------------------------------------------------------
    async def finish_attempt(
        self, job: Job, run: JobRun, task_id: str, end: AttemptEnd, at: datetime | None = None
    ) -> JobRun:
        now = self._clock.now()
        succeeded = end.outcome == "success"
        chained, problems = await self._chain(job, succeeded=succeeded)

        def change(r: JobRun) -> Transition | None:
            last = r.attempts[-1] if r.attempts else None
            if not r.active or last is None or not last.in_flight or last.task_id != task_id:
                return None
            last.stopped_at = at or now
            last.exit_code = end.exit_code
            last.stop_code = end.stop_code
            last.stopped_reason = end.reason
            n = r.task_attempts
            if end.outcome == "success":
                _finish(r, RunStatus.SUCCEEDED, None, now)
                return self._ended(job, r, chained, now)
            if end.outcome == "cancelled":
                _finish(r, RunStatus.CANCELLED, f"task stopped: {end.reason}", now)
                return Transition(r)
            why = f"attempt {n} failed: {failure_reason(end)}"
            retry = job.retry
            if retry.retry_on_failure and n < retry.max_attempts:
                delay = backoff_delay(retry, n, self._rand())
                r.status = RunStatus.RETRYING
                r.reason = f"{why}; attempt {n + 1} of {retry.max_attempts} in {delay:.1f} s"
                r.next_attempt_at = now + timedelta(seconds=delay)
                return Transition(r)
            _finish(r, RunStatus.FAILED, why, now)
            return self._ended(job, r, chained, now)

        return await self._chain_notice(job, await mutate_run(self._store, run, change), problems)

    def _ended(
        self, job: Job, run: JobRun, chained: dict[bool, list[str]], now: datetime
    ) -> Transition:
        """The transition of a run that just SUCCEEDED or FAILED: notifications, chain."""
        succeeded = run.status == RunStatus.SUCCEEDED
        children = [
            JobRun(
                run_id=new_run_id(),
                job_name=name,
                trigger=RunTrigger.CHAIN,
                parent_run_id=run.run_id,
                created_at=now,
            )
            for name in chained.get(succeeded, [])
        ]
        notes = notifications_for(job, run, status_events(run, job.retry.max_attempts), now)
        return Transition(run, new_runs=children, notes=notes)

    async def _after(self, job: Job, run: JobRun) -> JobRun:
        """Wake whoever a finished run concerns (the delivery worker, chained jobs)."""
        if not run.active:
            if job.notifications:
                self._on_queued()
            children = job.chain.targets(run.status == RunStatus.SUCCEEDED)
            if children and run.status in (RunStatus.SUCCEEDED, RunStatus.FAILED):
                self._on_chained(children)
        return run

    async def _chain(self, job: Job, *, succeeded: bool) -> tuple[dict[bool, list[str]], list[str]]:
        """The chained jobs that can start, for each outcome (only the one that may happen
        is looked up), and why any target (deleted or disabled since) is left out."""
        out: dict[bool, list[str]] = {}
        names = job.chain.targets(succeeded)
        if not names:
            return out, []
        ok, problems = [], []
        for name in names:
            target = await self._store.get_job(name)
            if target is None:
                problems.append(f"chained job {name} does not exist; not started")
            elif not target.enabled:
                problems.append(f"chained job {name} is disabled; not started")
            else:
                ok.append(name)
        out[succeeded] = ok
        return out, problems

    # -- cancel --------------------------------------------------------------------------
    async def cancel(
        self, run: JobRun, reason: str, stop_code: StopCode = StopCode.USER_INITIATED
    ) -> JobRun:
        """Stop the run's task (also one launched but not yet recorded) and mark it
        CANCELLED. A run already finished is returned as it is."""
        if not run.active:
            return run
        task_ids = set(run.task_ids)
        last = run.attempts[-1] if run.attempts else None
        if last is not None and last.in_flight and last.task_id is None:
            task_ids |= {t.task_id for t in await self._store.list_tasks(started_by=run.run_id)}
        for task_id in sorted(task_ids):
            await self._stop_quietly(task_id, reason, stop_code)
        now = self._clock.now()

        def change(r: JobRun) -> Transition | None:
            if not r.active:
                return None
            tail = r.attempts[-1] if r.attempts else None
            if tail is not None and tail.in_flight:
                tail.stopped_at = now
                tail.stop_code = stop_code.value
                tail.stopped_reason = reason
            _finish(r, RunStatus.CANCELLED, reason, now)
            return Transition(r)

        return await mutate_run(self._store, run, change)

    async def replace_older(self, job: Job, run: JobRun) -> None:
        """Overlap policy Replace: cancel every older active run of the job."""
        for other in await self._store.active_job_runs(job.job_name):
            if other.run_id < run.run_id:
                tick = f" (tick {run.tick.isoformat()})" if run.tick else ""
                await self.cancel(
                    other,
                    f"replaced by run {run.run_id}{tick}",
                    StopCode.SERVICE_SCHEDULER_INITIATED,
                )
                await self.events(job.job_name, [f"run {other.run_id} replaced by {run.run_id}"])

    async def _stop_quietly(self, task_id: str, reason: str, code: StopCode) -> None:
        try:
            task = await self._store.get_task(task_id)
            if task is not None and task.last_status != LastStatus.STOPPED:
                await self._tasks.stop(task_id, reason, code)
        except (NotFound, Conflict):
            pass

    async def events(self, name: str, messages: list[str]) -> None:
        now = self._clock.now()
        await self._store.append_job_events(
            [JobEvent(job_name=name, created_at=now, message=m) for m in messages]
        )
