"""The job scheduler on fake time and a real store: ticks fired exactly at their time and
exactly once, missed-run policies across a restart, overlap policies across a restart,
retries with backoff, launch failures, chaining, notifications queued, "kill -9" at each step
of a launch, and two control planes racing on PostgreSQL (same ticks; lease takeover).

Tasks are created by the real ``Tasks`` controller; no agent runs them: a test finishes a
task by writing what the agent would (``Env.finish``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from hatoba.model.job import (
    MissedRunPolicy,
    NotificationEvent,
    OverlapPolicy,
    RunStatus,
    RunTrigger,
)
from hatoba.model.task import DesiredStatus, LastStatus, StopCode
from hatoba.store.sql import SqlStore
from tests.conftest import PG_HOST, _admin
from tests.controllers.jobs_support import T0, Env, open_env, running, until

pytestmark = pytest.mark.timeout(60)

MINUTE = 60


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    e = await open_env(f"sqlite+aiosqlite:///{tmp_path / 'hatoba.db'}")
    yield e
    for s in e.stores:
        await s.close()


@pytest.fixture
async def pg_env(pg_database: str) -> AsyncIterator[Env]:
    await _admin("DROP SCHEMA public CASCADE; CREATE SCHEMA public", database=pg_database)
    e = await open_env(f"postgresql+asyncpg://postgres@{PG_HOST}:5432/{pg_database}")
    yield e
    for s in e.stores:
        await s.close()


async def other_store(env: Env) -> SqlStore:
    """Another store object on the same database: a stand-in for another process."""
    url = env.store._runner.engine.url.render_as_string(hide_password=False)
    s = SqlStore(url, poll_interval=0.05)
    await s.migrate()
    env.stores.append(s)
    return s


def one_task_per_tick(runs: list[Any], tasks: list[Any]) -> None:
    started = [r for r in runs if r.status != RunStatus.SKIPPED]
    assert sorted(t.started_by for t in tasks) == sorted(r.run_id for r in started)
    for r in started:
        assert r.task_ids == [t.task_id for t in tasks if t.started_by == r.run_id]
    ticks = [r.tick for r in runs if r.tick is not None]
    assert len(ticks) == len(set(ticks))


# ---- firing on time ----------------------------------------------------------------------


async def test_fires_each_tick_exactly_at_its_time_once(env: Env) -> None:
    await env.create(schedule="rate(1 minute)")
    scheduler = env.scheduler()
    async with running(scheduler):
        for i in range(1, 6):
            await env.advance(MINUTE)
            await until(lambda i=i: _count_tasks(env, i), what=f"task {i}")
            tasks = await env.job_tasks()
            await env.finish(tasks[-1].task_id)
            await until(lambda: _all_done(env), what="run finished")
    runs = await env.runs()
    assert [r.tick for r in runs] == [T0 + timedelta(minutes=i) for i in range(1, 6)]
    assert all(r.status == RunStatus.SUCCEEDED for r in runs)
    # fake time stands still while the pass runs: the attempt started exactly at the tick
    assert all(r.attempts[0].started_at == r.tick for r in runs)
    one_task_per_tick(runs, await env.job_tasks())
    job = await env.store.get_job("report")
    assert job is not None and job.last_tick == T0 + timedelta(minutes=5)
    tasks = await env.job_tasks()
    assert all(t.group == "job:report" and t.task_definition_arn == "report:1" for t in tasks)


async def _count_tasks(env: Env, n: int) -> bool:
    return len(await env.job_tasks()) >= n


async def _all_done(env: Env) -> bool:
    return not await env.store.active_job_runs("report")


async def test_manual_run_from_another_process_is_launched_via_the_feed(env: Env) -> None:
    await env.create()  # no schedule
    scheduler = env.scheduler()
    async with running(scheduler):
        other = await other_store(env)
        run = await env.jobs(other).run_now("report")
        assert run.status == RunStatus.PENDING and run.trigger == RunTrigger.MANUAL
        got = await env.jobs(other).wait_for_run(run.run_id, 5)
        assert got.status == RunStatus.RUNNING and len(got.task_ids) == 1
        await env.finish(got.task_ids[0], exit_code=3)
        done = await env.jobs(other).wait_for_run(run.run_id, 5, finished=True)
    assert done.status == RunStatus.FAILED and done.exit_code == 3
    assert done.reason == "attempt 1 failed: exit code 3"


# ---- missed runs across a restart ------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "started", "skipped"),
    [
        (
            MissedRunPolicy.NONE,
            ["13:10"],
            {"12:50": "missedRunPolicy none", "13:00": "missedRunPolicy none"},
        ),
        (
            MissedRunPolicy.LATEST,
            ["13:10"],
            {"12:50": "superseded", "13:00": "superseded"},
        ),
        (MissedRunPolicy.ALL, ["12:50", "13:00", "13:10"], {}),
    ],
)
async def test_missed_run_policies_across_a_restart(
    env: Env, policy: MissedRunPolicy, started: list[str], skipped: dict[str, str]
) -> None:
    await env.create(
        schedule="rate(10 minutes)",
        missed_run_policy=policy,
        overlap_policy=OverlapPolicy.ALLOW,
        starting_deadline_seconds=1800,
    )
    first = env.scheduler("cp-a")
    await env.advance(10 * MINUTE)
    await first.reconcile("report")
    [task] = await env.job_tasks()
    await env.finish(task.task_id)
    await first.reconcile("report")
    del first  # the control plane goes down for an hour
    await env.advance(3600 + 30)  # 13:10:30
    second = env.scheduler("cp-b")
    await second.reconcile("report")
    await second.reconcile("report")  # a second pass changes nothing
    runs = (await env.runs())[1:]
    hhmm = {r.tick.strftime("%H:%M"): r for r in runs if r.tick}
    assert sorted(hhmm) == ["12:20", "12:30", "12:40", "12:50", "13:00", "13:10"]
    for t in ("12:20", "12:30", "12:40"):
        assert hhmm[t].status == RunStatus.SKIPPED
        assert hhmm[t].reason == (
            "missed while the control plane was down: past the starting deadline"
        )
    for t, why in skipped.items():
        assert hhmm[t].status == RunStatus.SKIPPED
        reason = hhmm[t].reason
        assert reason is not None and reason.startswith("missed while the control plane was down")
        assert why in reason
    assert sorted(t for t, r in hhmm.items() if r.status == RunStatus.RUNNING) == started
    one_task_per_tick(await env.runs(), await env.job_tasks())
    job = await env.store.get_job("report")
    assert job is not None and job.last_tick == T0 + timedelta(minutes=70)


async def test_more_missed_ticks_than_the_cap_are_summed_up(env: Env) -> None:
    await env.create(schedule="rate(1 minute)", max_missed_runs=3)
    await env.advance(2 * 86400 + 10)
    scheduler = env.scheduler()
    await scheduler.reconcile("report")
    runs = await env.runs()
    assert [r.status for r in runs] == [RunStatus.SKIPPED] * 3 + [RunStatus.RUNNING]
    assert runs[-1].tick == T0 + timedelta(days=2)  # the on-time one
    events = [e.message for e in await env.store.list_job_events("report")]
    assert len(events) == 1 and "maxMissedRuns 3" in events[0] and "more ticks" in events[0]
    job = await env.store.get_job("report")
    assert job is not None and job.last_tick == T0 + timedelta(days=2)


async def test_disabled_jobs_do_not_fire_and_enabling_does_not_catch_up(env: Env) -> None:
    await env.create(schedule="rate(1 minute)", enabled=False)
    scheduler = env.scheduler()
    await env.advance(10 * MINUTE)
    await scheduler.reconcile("report")
    assert await env.runs() == []
    await env.jobs().enable("report")
    await scheduler.reconcile("report")
    assert await env.runs() == []  # the ticks while disabled are not "missed"
    await env.advance(MINUTE)
    await scheduler.reconcile("report")
    assert [r.status for r in await env.runs()] == [RunStatus.RUNNING]


# ---- overlap ------------------------------------------------------------------------------


async def test_forbid_skips_while_running_and_holds_across_a_restart(env: Env) -> None:
    await env.create(schedule="rate(1 minute)", overlap_policy=OverlapPolicy.FORBID)
    first = env.scheduler("cp-a")
    await env.advance(MINUTE)
    await first.reconcile("report")
    del first
    second = env.scheduler("cp-b")  # knows nothing but the store
    await env.advance(MINUTE)
    await second.reconcile("report")
    runs = await env.runs()
    assert [r.status for r in runs] == [RunStatus.RUNNING, RunStatus.SKIPPED]
    assert runs[1].reason == f"previous run still running ({runs[0].run_id})"
    [task] = await env.job_tasks()
    await env.finish(task.task_id)
    await env.advance(MINUTE)
    await second.reconcile("report")
    runs = await env.runs()
    assert [r.status for r in runs] == [RunStatus.SUCCEEDED, RunStatus.SKIPPED, RunStatus.RUNNING]
    one_task_per_tick(runs, await env.job_tasks())


async def test_replace_stops_the_previous_run_even_across_a_crash(env: Env) -> None:
    await env.create(schedule="rate(1 minute)", overlap_policy=OverlapPolicy.REPLACE)
    first = env.scheduler("cp-a")
    await env.advance(MINUTE)
    await first.reconcile("report")
    # the next tick is claimed, then the control plane dies before replacing
    crashing = await other_store(env)
    dying = env.scheduler("cp-a", store=crashing)
    _crash_after(crashing, "claim_tick")
    await env.advance(MINUTE)
    with pytest.raises(Killed):
        await dying.reconcile("report")
    await env.advance(1)  # its lease runs out; another control plane takes over
    second = env.scheduler("cp-b")
    await second.reconcile("report")
    old, new = await env.runs()
    assert old.status == RunStatus.CANCELLED
    assert old.reason == f"replaced by run {new.run_id} (tick {new.tick.isoformat()})"  # type: ignore[union-attr]
    assert new.status == RunStatus.RUNNING
    first_task, second_task = await env.job_tasks()
    assert first_task.desired_status == DesiredStatus.STOPPED
    assert first_task.stop_code == StopCode.SERVICE_SCHEDULER_INITIATED
    # the agent stops it: the cancelled run stays cancelled, the new one runs on
    await env.finish(first_task.task_id, 143, StopCode.SERVICE_SCHEDULER_INITIATED)
    await second.reconcile("report")
    old, new = await env.runs()
    assert old.status == RunStatus.CANCELLED and new.status == RunStatus.RUNNING
    assert new.task_ids == [second_task.task_id]


# ---- retries and launch failures -----------------------------------------------------


async def test_failed_attempts_are_retried_with_backoff_then_succeed(env: Env) -> None:
    hook = {"url": "http://127.0.0.1:9/hook", "events": ["start", "success", "failure"]}
    await env.create(
        retry={"maxAttempts": 3, "retryOnFailure": True, "backoffSeconds": 10},
        notifications=[hook],
    )
    scheduler = env.scheduler()
    run = await env.jobs().run_now("report")
    await scheduler.reconcile("report")
    for attempt, delay in ((1, 10), (2, 20)):
        tasks = await env.job_tasks()
        assert len(tasks) == attempt
        await env.finish(tasks[-1].task_id, exit_code=1)
        await scheduler.reconcile("report")
        got = await env.store.get_job_run(run.run_id)
        assert got is not None and got.status == RunStatus.RETRYING
        assert got.next_attempt_at == env.clock.now() + timedelta(seconds=delay)
        assert got.reason == (
            f"attempt {attempt} failed: exit code 1; attempt {attempt + 1} of 3 in {delay:.1f} s"
        )
        await env.advance(delay - 1)
        await scheduler.reconcile("report")
        assert len(await env.job_tasks()) == attempt  # not yet
        await env.advance(1)
        await scheduler.reconcile("report")
    tasks = await env.job_tasks()
    assert len(tasks) == 3
    await env.finish(tasks[-1].task_id, exit_code=0)
    await scheduler.reconcile("report")
    done = await env.store.get_job_run(run.run_id)
    assert done is not None and done.status == RunStatus.SUCCEEDED
    assert [a.exit_code for a in done.attempts] == [1, 1, 0]
    assert done.task_ids == [t.task_id for t in tasks]
    notes = await env.store.list_job_notifications("report")
    assert [n.event for n in notes] == [NotificationEvent.START, NotificationEvent.SUCCESS]
    assert notes[1].payload["attempt"] == 3 and notes[1].payload["exitCode"] == 0


async def test_retries_exhausted_fails_notifies_and_chains_on_failure(env: Env) -> None:
    await env.create("alert", task_definition="alert")
    hook = {"url": "http://127.0.0.1:9/h", "format": "slack", "events": ["retriesExhausted"]}
    await env.create(
        retry={"maxAttempts": 2, "retryOnFailure": True, "backoffSeconds": 0},
        chain={"onFailure": ["alert"]},
        notifications=[hook, {"url": "http://127.0.0.1:9/j", "events": ["failure"]}],
    )
    scheduler = env.scheduler()
    run = await env.jobs().run_now("report")
    await scheduler.reconcile("report")
    for _ in range(2):  # no backoff: the retry starts in the pass that saw the failure
        [live] = [t for t in await env.job_tasks() if t.last_status != LastStatus.STOPPED]
        await env.finish(live.task_id, exit_code=2)
        await scheduler.reconcile("report")
    done = await env.store.get_job_run(run.run_id)
    assert done is not None and done.status == RunStatus.FAILED
    assert done.reason == "attempt 2 failed: exit code 2"
    notes = await env.store.list_job_notifications("report")
    assert sorted(n.event for n in notes) == ["failure", "retriesExhausted"]
    slack = next(n for n in notes if n.event == NotificationEvent.RETRIES_EXHAUSTED)
    assert "failed after its last attempt" in slack.payload["text"]
    assert slack.payload["blocks"][0]["type"] == "section"
    [child] = await env.runs("alert")
    assert child.trigger == RunTrigger.CHAIN and child.parent_run_id == run.run_id
    await scheduler.reconcile("alert")
    [alert_task] = await env.job_tasks("alert")
    assert alert_task.started_by == child.run_id


async def test_timeout_per_attempt_is_passed_to_the_task(env: Env) -> None:
    await env.create(timeout_seconds=90)
    scheduler = env.scheduler()
    await env.jobs().run_now("report")
    await scheduler.reconcile("report")
    [task] = await env.job_tasks()
    assert task.timeout_seconds == 90
    await env.finish(task.task_id, exit_code=None, stop_code=StopCode.TASK_TIMED_OUT)
    await scheduler.reconcile("report")
    [run] = await env.runs()
    assert run.status == RunStatus.FAILED and run.reason == "attempt 1 failed: timed out"


async def test_launch_failures_wait_for_capacity_without_using_attempts(env: Env) -> None:
    await env.create(overrides={"memory": 8192}, retry={"backoffSeconds": 10})
    scheduler = env.scheduler()
    run = await env.jobs().run_now("report")
    await scheduler.reconcile("report")
    got = await env.store.get_job_run(run.run_id)
    assert got is not None and got.status == RunStatus.RETRYING
    assert got.reason is not None and got.reason.startswith("waiting for capacity: RESOURCE:MEMORY")
    assert got.task_attempts == 0 and got.attempts[0].launch_failure is not None
    node = await env.store.get_node("node-1")
    assert node is not None
    await env.store.put_node(node.model_copy(update={"memory": 16384}))
    await env.advance(10)
    await scheduler.reconcile("report")
    got = await env.store.get_job_run(run.run_id)
    assert got is not None and got.status == RunStatus.RUNNING
    assert got.task_attempts == 1 and len(got.attempts) == 2


async def test_launch_failures_past_the_starting_deadline_fail_the_run(env: Env) -> None:
    await env.create(
        overrides={"memory": 8192},
        retry={"backoffSeconds": 10},
        starting_deadline_seconds=25,
    )
    scheduler = env.scheduler()
    run = await env.jobs().run_now("report")
    await scheduler.reconcile("report")  # fails; retry in 10 s
    await env.advance(10)
    await scheduler.reconcile("report")  # fails; 20 s more would pass the deadline
    got = await env.store.get_job_run(run.run_id)
    assert got is not None and got.status == RunStatus.FAILED
    assert got.reason is not None
    assert got.reason.startswith("could not be placed within the starting deadline")
    assert len(got.attempts) == 2 and await env.job_tasks() == []


async def test_chain_on_success_starts_the_next_job_with_the_parent_run_id(env: Env) -> None:
    await env.create("cleanup", task_definition="cleanup")
    await env.create("alert", task_definition="alert")
    await env.create(chain={"onSuccess": ["cleanup"], "onFailure": ["alert"]})
    scheduler = env.scheduler()
    async with running(scheduler):
        run = await env.jobs().run_now("report")
        started = await env.jobs().wait_for_run(run.run_id, 5)
        await env.finish(started.task_ids[0])
        await until(lambda: _has_tasks(env, "cleanup"), what="chained task")
    [child] = await env.runs("cleanup")
    assert child.parent_run_id == run.run_id and child.trigger == RunTrigger.CHAIN
    assert child.status == RunStatus.RUNNING
    assert await env.runs("alert") == []


async def _has_tasks(env: Env, name: str) -> bool:
    return bool(await env.job_tasks(name))


# ---- kill -9 at each step ------------------------------------------------------------------


class Killed(BaseException):
    """The process died here (nothing in the code under test catches a BaseException)."""


def _crash_after(obj: Any, method: str) -> None:
    real = getattr(obj, method)

    async def crash(*args: Any, **kwargs: Any) -> Any:
        await real(*args, **kwargs)
        raise Killed(method)

    setattr(obj, method, crash)


def _crash_before(obj: Any, method: str) -> None:
    async def crash(*args: Any, **kwargs: Any) -> Any:
        raise Killed(method)

    setattr(obj, method, crash)


async def test_a_restarted_control_plane_resumes_its_launch_after_the_grace(env: Env) -> None:
    """The same holder (the same data directory, restarted) waits the lease ttl too: its
    previous incarnation's database call might still commit."""
    await env.create(schedule="rate(1 minute)")
    dying_store = await other_store(env)
    dying = env.scheduler("cp-a", store=dying_store, lease_ttl=15.0)
    _crash_after(dying_store, "claim_tick")
    await env.advance(MINUTE)
    with pytest.raises(Killed):
        await dying.reconcile("report")
    restarted = env.scheduler("cp-a", lease_ttl=15.0)
    async with running(restarted):
        await asyncio.sleep(0.2)
        assert await env.job_tasks() == []  # not yet
        await env.advance(15)  # the timer wakes the job exactly at the end of the grace
        await until(lambda: _count_tasks(env, 1), what="resumed launch")
    [run] = await env.runs()
    [task] = await env.job_tasks()
    assert run.status == RunStatus.RUNNING and run.task_ids == [task.task_id]
    assert run.attempts[0].launched_by == "cp-a"


@pytest.mark.parametrize(
    ("where", "when"),
    [
        ("store.claim_tick", "after"),  # claimed, nothing launched
        ("tasks.run", "before"),  # claimed, launch about to happen
        ("tasks.run", "after"),  # task created, not recorded on the run
        ("store.update_job_run", "after"),  # task recorded, watermark not moved
        ("store.update_job", "before"),  # ditto, crashing at the watermark write
    ],
)
async def test_kill_at_each_step_of_a_launch_starts_the_tick_exactly_once(
    env: Env, where: str, when: str
) -> None:
    await env.create(schedule="rate(1 minute)")
    dying_store = await other_store(env)
    dying_tasks = env.tasks(dying_store)
    dying = env.scheduler("cp-a", store=dying_store, tasks=dying_tasks)
    owner, method = where.split(".")
    target = {"store": dying_store, "tasks": dying_tasks}[owner]
    (_crash_after if when == "after" else _crash_before)(target, method)
    await env.advance(MINUTE)
    with pytest.raises(Killed):
        await dying.reconcile("report")
    del dying
    # another control plane takes over: it leaves an attempt in flight alone until the
    # lease ttl has passed since it began (its launcher might be alive)...
    survivor = env.scheduler("cp-b")
    await survivor.reconcile("report")
    assert len(await env.job_tasks()) <= 1
    # ... then finishes it: records the task launched, or launches it
    await env.advance(1)
    await survivor.reconcile("report")
    await survivor.reconcile("report")
    [run] = await env.runs()
    [task] = await env.job_tasks()
    assert run.tick == T0 + timedelta(minutes=1) and run.status == RunStatus.RUNNING
    assert run.task_ids == [task.task_id] and task.started_by == run.run_id
    job = await env.store.get_job("report")
    assert job is not None and job.last_tick == run.tick
    await env.advance(MINUTE)  # and life goes on: the next tick is skipped (Forbid)
    await survivor.reconcile("report")
    assert [r.status for r in await env.runs()] == [RunStatus.RUNNING, RunStatus.SKIPPED]


# ---- two control planes on PostgreSQL --------------------------------------------------


async def test_two_schedulers_racing_on_postgres_start_each_tick_once(pg_env: Env) -> None:
    env = pg_env
    await env.create(schedule="rate(1 minute)", overlap_policy=OverlapPolicy.ALLOW)
    a = env.scheduler("cp-a", store=await other_store(env))
    b = env.scheduler("cp-b", store=await other_store(env))
    for _ in range(15):
        await env.advance(MINUTE)
        await asyncio.gather(a.reconcile("report"), b.reconcile("report"))
    runs = await env.runs()
    assert [r.tick for r in runs] == [T0 + timedelta(minutes=i) for i in range(1, 16)]
    assert all(r.status == RunStatus.RUNNING for r in runs)
    tasks = await env.job_tasks()
    assert len(tasks) == 15
    one_task_per_tick(runs, tasks)


async def test_lease_takeover_on_postgres_loses_and_repeats_no_tick(pg_env: Env) -> None:
    env = pg_env
    await env.create(
        schedule="every(1)",
        overlap_policy=OverlapPolicy.ALLOW,
        missed_run_policy=MissedRunPolicy.ALL,
    )
    store_a, store_b = await other_store(env), await other_store(env)
    a = env.scheduler("cp-a", store=store_a, lease_ttl=3.0)
    b = env.scheduler("cp-b", store=store_b, lease_ttl=3.0)
    task_a = asyncio.create_task(a.run())
    await asyncio.wait_for(a.is_leader.wait(), 5)
    task_b = asyncio.create_task(b.run())
    try:
        for i in range(1, 6):
            await env.advance(1)
            await until(lambda i=i: _count_tasks(env, i), what=f"tick {i} by a")
        assert not b.is_leader.is_set()

        async def no_release(*_: Any) -> None:
            return None

        store_a.release_lease = no_release  # type: ignore[method-assign]
        task_a.cancel()  # kill -9: the lease is not given back, it has to expire
        await asyncio.gather(task_a, return_exceptions=True)
        for _ in range(10):
            await env.advance(1)
            await asyncio.sleep(0.02)
        await asyncio.wait_for(b.is_leader.wait(), 5)
        await until(lambda: _count_tasks(env, 15), what="b catching up")
    finally:
        task_b.cancel()
        await asyncio.gather(task_b, return_exceptions=True)
    runs = await env.runs()
    assert [r.tick for r in runs] == [T0 + timedelta(seconds=i) for i in range(1, 16)]
    one_task_per_tick(runs, await env.job_tasks())
    assert len(await env.job_tasks()) == 15


# ---- history retention -----------------------------------------------------------------


async def test_history_past_its_retention_is_purged(env: Env) -> None:
    await env.create(history_retention_days=1)
    scheduler = env.scheduler()
    jobs = env.jobs()
    old = await jobs.run_now("report")
    await scheduler.reconcile("report")
    [task] = await env.job_tasks()
    await env.finish(task.task_id)
    await scheduler.reconcile("report")
    await env.advance(2 * 86400)
    live = await jobs.run_now("report")
    recent = await jobs.run_now("report")
    await jobs.cancel_run(recent.run_id)
    assert await scheduler.purge_history() == 1
    left = {r.run_id for r in await env.runs()}
    assert left == {live.run_id, recent.run_id} and old.run_id not in left
