"""Pure decisions of the job scheduler: which ticks of a schedule are due and what becomes of
each (start, or SKIPPED and why), how long to back off before a retry, and how an attempt
ended. No I/O and no clock: every function takes ``now``.

Ticks and lateness. A tick fires at ``tick + flexible offset`` (0 without a flexible
window). A tick is *on time* while it is at most ``ON_TIME_GRACE`` (60 s, or the starting
deadline when that is shorter) late: it starts, whatever the missed-run policy, so a slow
pass or a leader failover does not turn a tick into a "missed" one. Later than that it is
*missed*; past ``startingDeadlineSeconds`` it is always SKIPPED. In between, the
missed-run policy decides: ``none`` skips it, ``latest`` starts only the newest due tick,
``all`` starts each (the newest ``maxMissedRuns`` of them). ``maxMissedRuns`` also bounds how
many skipped missed ticks one pass records one by one; the rest are summed up in one event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from hatoba.model.job import Job, MissedRunPolicy, RetryPolicy
from hatoba.model.schedule import Schedule, flexible_offset
from hatoba.model.task import StopCode, Task

ON_TIME_GRACE = timedelta(seconds=60)
BATCH = 10_000  # ticks looked at per pass; a longer backlog is worked off over passes
DOWN = "missed while the control plane was down"


@dataclass(frozen=True)
class TickStep:
    tick: datetime
    fire_at: datetime
    skip_reason: str | None = None  # None: start it (the overlap policy permitting)


@dataclass
class TickPlan:
    steps: list[TickStep] = field(default_factory=list)
    watermark: datetime | None = None  # the new lastTick; None: unchanged
    next_fire_at: datetime | None = None  # when this job's schedule needs a pass again
    unrecorded: str | None = None  # an event about ticks skipped without a run each


def fire_time(job: Job, tick: datetime) -> datetime:
    return tick + flexible_offset(job.job_name, tick, job.flexible_window_minutes)


def start_of(job: Job) -> datetime:
    """The watermark: ticks up to it are handled."""
    return job.last_tick or job.created_at


def plan_ticks(job: Job, schedule: Schedule, now: datetime) -> TickPlan:
    """What to do about ``job``'s ticks after its watermark, as of ``now``."""
    plan = TickPlan()
    cursor = start_of(job)
    deadline = timedelta(seconds=job.starting_deadline_seconds)
    on_time = min(ON_TIME_GRACE, deadline)
    cap = job.max_missed_runs
    skipped = 0  # missed ticks recorded SKIPPED one by one this pass
    unrecorded: list[datetime] = []

    def skip(tick: datetime, fire: datetime, reason: str) -> None:
        nonlocal skipped
        if skipped < cap:
            plan.steps.append(TickStep(tick, fire, reason))
            skipped += 1
        else:
            unrecorded.append(tick)

    # Ticks past the deadline even with the longest offset: skipped whatever the policy.
    # Only the first ``cap`` of them are enumerated; the rest are jumped over.
    far = now - deadline - timedelta(minutes=job.flexible_window_minutes)
    more_past: tuple[datetime, datetime] | None = None
    if cursor < far:
        for tick in schedule.ticks_between(cursor, far, cap):
            skip(tick, fire_time(job, tick), f"{DOWN}: past the starting deadline")
        last = plan.steps[-1].tick if plan.steps else cursor
        beyond = schedule.next_after(last)
        if beyond is not None and beyond <= far:
            more_past = (beyond, far)
        cursor = far

    ticks = schedule.ticks_between(cursor, now, BATCH)
    truncated = len(ticks) == BATCH
    fires = [fire_time(job, t) for t in ticks]
    due = [i for i, f in enumerate(fires) if f <= now]
    waiting = [i for i, f in enumerate(fires) if f > now]
    newest = due[-1] if due and not (truncated and not waiting) else None

    # classify; with ``all``, only the newest ``cap`` missed ticks start
    missed_starts = [
        i
        for i in due
        if on_time < now - fires[i] <= deadline and job.missed_run_policy == MissedRunPolicy.ALL
    ]
    too_many = set(missed_starts[: max(0, len(missed_starts) - cap)])
    for i in due:
        tick, fire = ticks[i], fires[i]
        late = now - fire
        if late <= on_time:
            plan.steps.append(TickStep(tick, fire))
        elif late > deadline:
            skip(tick, fire, f"{DOWN}: past the starting deadline")
        elif job.missed_run_policy == MissedRunPolicy.NONE:
            skip(tick, fire, f"{DOWN}: missedRunPolicy none")
        elif job.missed_run_policy == MissedRunPolicy.LATEST:
            if i == newest:
                plan.steps.append(TickStep(tick, fire))
            else:
                skip(tick, fire, f"{DOWN}: superseded by a later tick (missedRunPolicy latest)")
        elif i in too_many:
            skip(tick, fire, f"{DOWN}: more than maxMissedRuns ({cap}) missed ticks")
        else:
            plan.steps.append(TickStep(tick, fire))

    # The watermark stops short of the first tick not yet due (a flexible window can make
    # a later tick due first; ticks handled past the watermark are claimed already, so a
    # later pass finds them taken and does nothing).
    if waiting:
        first = waiting[0]
        mark = ticks[first - 1] if first > 0 else cursor
        plan.next_fire_at = min(fires[i] for i in waiting)
    else:
        mark = ticks[-1] if ticks else cursor
        if truncated:
            plan.next_fire_at = now
        else:
            upcoming = schedule.next_after(max(mark, now))
            if upcoming is not None:
                plan.next_fire_at = fire_time(job, upcoming)
    if mark > start_of(job):
        plan.watermark = mark
    plan.unrecorded = _unrecorded_message(job, unrecorded, more_past)
    return plan


def _unrecorded_message(
    job: Job, ticks: list[datetime], more_past: tuple[datetime, datetime] | None
) -> str | None:
    if not ticks and more_past is None:
        return None
    first = more_past[0] if more_past else ticks[0]
    last = ticks[-1] if ticks else more_past[1] if more_past else None
    count = f"{len(ticks)}+" if more_past else str(len(ticks))
    return (
        f"{count} more ticks of job {job.job_name} were {DOWN}, from {_iso(first)} to "
        f"{_iso(last)}; skipped without a run each (maxMissedRuns {job.max_missed_runs})"
    )


def _iso(at: datetime | None) -> str:
    return "?" if at is None else at.isoformat().replace("+00:00", "Z")


def backoff_delay(retry: RetryPolicy, failures: int, rand: float) -> float:
    """Seconds before the next attempt after ``failures`` consecutive failures (>= 1):
    exponential from ``backoffSeconds``, capped at ``maxBackoffSeconds``, with full jitter
    (``rand`` uniform in [0, 1))."""
    exponent = min(max(failures, 1) - 1, 60)
    ceiling = min(retry.max_backoff_seconds, retry.backoff_seconds * 2.0**exponent)
    return ceiling * rand


@dataclass(frozen=True)
class AttemptEnd:
    outcome: str  # "success", "failure" or "cancelled"
    exit_code: int | None
    stop_code: str | None
    reason: str | None


_STOPPED_BY_SOMEONE = {StopCode.USER_INITIATED, StopCode.SERVICE_SCHEDULER_INITIATED}


def attempt_end(task: Task) -> AttemptEnd:
    """How a STOPPED task ends its attempt: exit 0 is success (unless it timed out); a task
    someone stopped (a user, or the scheduler replacing the run) cancels the run; anything
    else (non-zero, timed out, failed to start, lost) is a failure."""
    code = task.exit_code
    stop = task.stop_code
    reason = task.stopped_reason
    if stop in _STOPPED_BY_SOMEONE:
        outcome = "cancelled"
    elif code == 0 and stop != StopCode.TASK_TIMED_OUT:
        outcome = "success"
    else:
        outcome = "failure"
    return AttemptEnd(outcome, code, stop.value if stop is not None else None, reason)


def failure_reason(end: AttemptEnd) -> str:
    if end.stop_code == StopCode.TASK_TIMED_OUT.value:
        return "timed out"
    if end.exit_code is not None:
        return f"exit code {end.exit_code}"
    return end.reason or end.stop_code or "stopped without an exit code"
