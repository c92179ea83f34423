"""Pure decisions: due ticks (on time, missed, deadline, cap, flexible window, watermark,
next fire), backoff with full jitter, and how a stopped task ends an attempt."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hatoba.controllers.job_plan import attempt_end, backoff_delay, fire_time, plan_ticks
from hatoba.model.job import Job, MissedRunPolicy, RetryPolicy
from hatoba.model.schedule import parse_schedule
from hatoba.model.task import Container, StopCode, Task
from tests.controllers.jobs_support import T0

M = timedelta(minutes=1)


def job(**fields: Any) -> Job:
    fields.setdefault("schedule", "rate(1 minute)")
    return Job(
        job_name="report",
        task_definition="report",
        created_at=T0,
        updated_at=T0,
        last_tick=T0,
        **fields,
    )


def plan(j: Job, now_offset: timedelta) -> Any:
    assert j.schedule is not None
    return plan_ticks(j, parse_schedule(j.schedule, j.timezone), T0 + now_offset)


def test_nothing_due_sleeps_until_the_next_tick() -> None:
    p = plan(job(), timedelta(seconds=59))
    assert p.steps == [] and p.watermark is None and p.next_fire_at == T0 + M


def test_an_on_time_tick_starts_and_moves_the_watermark() -> None:
    p = plan(job(missed_run_policy=MissedRunPolicy.NONE), M + timedelta(seconds=59))
    assert [(s.tick, s.skip_reason) for s in p.steps] == [(T0 + M, None)]
    assert p.watermark == T0 + M and p.next_fire_at == T0 + 2 * M


def test_a_short_deadline_makes_on_time_shorter() -> None:
    p = plan(job(starting_deadline_seconds=5), M + timedelta(seconds=6))
    assert p.steps[0].skip_reason is not None
    assert "past the starting deadline" in p.steps[0].skip_reason


def test_all_starts_only_the_newest_cap_missed_ticks() -> None:
    j = job(missed_run_policy=MissedRunPolicy.ALL, max_missed_runs=2)
    p = plan(j, 5 * M + timedelta(seconds=30))  # 1..4 missed, 5 on time
    starts = [s.tick for s in p.steps if s.skip_reason is None]
    assert starts == [T0 + 3 * M, T0 + 4 * M, T0 + 5 * M]
    skipped = [s for s in p.steps if s.skip_reason]
    assert [s.tick for s in skipped] == [T0 + M, T0 + 2 * M]
    assert all("more than maxMissedRuns (2)" in (s.skip_reason or "") for s in skipped)


def test_a_flexible_window_delays_each_tick_by_its_own_offset() -> None:
    j = job(schedule="rate(1 hour)", flexible_window_minutes=30)
    tick = T0 + timedelta(hours=1)
    fire = fire_time(j, tick)
    assert tick <= fire < tick + timedelta(minutes=30)
    assert fire_time(j, tick) == fire  # the same on every control plane
    before = plan(j, fire - T0 - timedelta(seconds=1))
    assert before.steps == [] and before.next_fire_at == fire and before.watermark is None
    at = plan(j, fire - T0)
    assert [(s.tick, s.fire_at, s.skip_reason) for s in at.steps] == [(tick, fire, None)]


def test_a_long_backlog_is_cut_at_the_deadline_and_summed_up() -> None:
    j = job(max_missed_runs=5, starting_deadline_seconds=600)
    p = plan(j, timedelta(days=30, seconds=30))
    assert len(p.steps) == 6  # 5 recorded skips + the on-time tick
    assert p.steps[-1].skip_reason is None and p.steps[-1].tick == T0 + timedelta(days=30)
    assert p.unrecorded is not None and "maxMissedRuns 5" in p.unrecorded
    assert "+ more ticks" in p.unrecorded and "from 2026-03-02T12:06:00Z" in p.unrecorded
    assert p.watermark == T0 + timedelta(days=30)


def test_backoff_is_exponential_capped_with_full_jitter() -> None:
    r = RetryPolicy(backoff_seconds=10, max_backoff_seconds=60)
    assert [backoff_delay(r, n, 1.0) for n in (1, 2, 3, 4, 5)] == [10, 20, 40, 60, 60]
    assert backoff_delay(r, 3, 0.0) == 0
    assert backoff_delay(r, 3, 0.5) == 20


def _task(code: int | None, stop: StopCode) -> Task:
    return Task(
        task_id="t",
        task_definition_arn="report:1",
        created_at=T0,
        stop_code=stop,
        stopped_reason="why",
        containers=[Container(name="app", exit_code=code)],
    )


def test_how_an_attempt_ends() -> None:
    assert attempt_end(_task(0, StopCode.ESSENTIAL_CONTAINER_EXITED)).outcome == "success"
    assert attempt_end(_task(1, StopCode.ESSENTIAL_CONTAINER_EXITED)).outcome == "failure"
    assert attempt_end(_task(0, StopCode.TASK_TIMED_OUT)).outcome == "failure"
    assert attempt_end(_task(None, StopCode.LOST)).outcome == "failure"
    assert attempt_end(_task(143, StopCode.USER_INITIATED)).outcome == "cancelled"
    assert attempt_end(_task(0, StopCode.SERVICE_SCHEDULER_INITIATED)).outcome == "cancelled"
