"""The declared side of jobs: validation by JSON path (all at once, nothing stored), chain
targets and cycles, update/enable/disable and the watermark, delete, cancel, history paging
and next fire times across a DST change."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hatoba.model.errors import Conflict, NotFound, ValidationFailed
from hatoba.model.job import JobSpec, RunStatus
from hatoba.model.task import DesiredStatus, StopCode
from tests.controllers.jobs_support import T0, Env, open_env


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    e = await open_env(f"sqlite+aiosqlite:///{tmp_path / 'hatoba.db'}")
    yield e
    for s in e.stores:
        await s.close()


def paths(exc: pytest.ExceptionInfo[ValidationFailed]) -> dict[str, str]:
    return {e.path: e.message for e in exc.value.errors}


async def test_every_problem_is_reported_by_path_and_nothing_is_stored(env: Env) -> None:
    spec = JobSpec.model_validate(
        {
            "jobName": "report",
            "taskDefinition": "nope",
            "schedule": "cron(61 * * * ? *)",
            "timezone": "Mars/Olympus",
            "chain": {"onSuccess": ["ghost"]},
            "overrides": {"containerOverrides": [{"name": "missing"}]},
        }
    )
    with pytest.raises(ValidationFailed) as exc:
        await env.jobs().create(spec)
    got = paths(exc)
    assert set(got) == {"taskDefinition", "schedule", "timezone", "chain.onSuccess[0]"}
    assert "not found" in got["taskDefinition"]
    assert "Mars/Olympus" in got["timezone"]
    assert got["chain.onSuccess[0]"] == "job ghost does not exist"
    assert await env.store.list_jobs() == []


async def test_overrides_are_checked_against_the_task_definition(env: Env) -> None:
    spec = JobSpec.model_validate(
        {
            "jobName": "report",
            "taskDefinition": "report",
            "overrides": {"containerOverrides": [{"name": "missing"}]},
        }
    )
    with pytest.raises(ValidationFailed) as exc:
        await env.jobs().create(spec)
    assert all(p.startswith("overrides.") for p in paths(exc))


async def test_chain_cycles_are_refused_with_the_path_of_the_edge(env: Env) -> None:
    await env.create("a")
    await env.create("b", chain={"onSuccess": ["a"]})
    with pytest.raises(ValidationFailed) as exc:
        await env.jobs().update(
            "a", JobSpec(job_name="a", task_definition="report", chain={"always": ["c", "b"]})
        )
    got = paths(exc)
    assert got["chain.always[0]"] == "job c does not exist"
    assert got["chain.always[1]"] == "chain cycle: a → b → a"
    with pytest.raises(ValidationFailed) as exc:
        await env.create("selfish", chain={"onFailure": ["selfish"]})
    assert paths(exc) == {"chain.onFailure[0]": "chain cycle: selfish → selfish"}


async def test_create_duplicate_and_name_mismatch(env: Env) -> None:
    job = await env.create(schedule="rate(5 minutes)")
    assert job.version == 1 and job.last_tick == T0 and job.created_at == T0
    with pytest.raises(Conflict, match="already exists"):
        await env.create()
    with pytest.raises(ValidationFailed) as exc:
        await env.jobs().update("report", JobSpec(job_name="other", task_definition="report"))
    assert "jobName" in paths(exc)
    with pytest.raises(NotFound):
        await env.jobs().describe("ghost")


async def test_update_and_enable_move_the_watermark_only_when_they_should(env: Env) -> None:
    await env.create(schedule="rate(5 minutes)")
    jobs = env.jobs()
    await env.advance(3600)
    same = await jobs.update(
        "report", JobSpec(job_name="report", task_definition="report", schedule="rate(5 minutes)")
    )
    assert same.version == 1  # nothing changed: nothing written
    retimed = await jobs.update(
        "report",
        JobSpec(
            job_name="report",
            task_definition="report",
            schedule="rate(5 minutes)",
            timeout_seconds=9,
        ),
    )
    assert retimed.last_tick == T0 and retimed.timeout_seconds == 9
    moved = await jobs.update(
        "report", JobSpec(job_name="report", task_definition="report", schedule="rate(1 hour)")
    )
    assert moved.last_tick == env.clock.now()
    await env.advance(600)
    disabled = await jobs.disable("report")
    assert not disabled.enabled and disabled.last_tick == moved.last_tick
    await env.advance(600)
    enabled = await jobs.enable("report")
    assert enabled.enabled and enabled.last_tick == env.clock.now()
    assert enabled.created_at == T0 and enabled.schedule == "rate(1 hour)"


async def test_run_now_cancel_and_history(env: Env) -> None:
    await env.create()
    jobs = env.jobs()
    scheduler = env.scheduler()
    runs = []
    for _ in range(5):
        runs.append(await jobs.run_now("report"))
    await scheduler.reconcile("report")
    page1 = await jobs.history("report", limit=2)
    assert [r.run_id for r in page1] == [runs[4].run_id, runs[3].run_id]
    page2 = await jobs.history("report", limit=2, before=page1[-1].run_id)
    assert [r.run_id for r in page2] == [runs[2].run_id, runs[1].run_id]
    running = await jobs.get_run(runs[0].run_id)
    assert running.status == RunStatus.RUNNING
    cancelled = await jobs.cancel_run(running.run_id)
    assert cancelled.status == RunStatus.CANCELLED and cancelled.reason == "cancelled by user"
    task = await env.store.get_task(running.task_ids[0])
    assert task is not None and task.desired_status == DesiredStatus.STOPPED
    assert task.stop_code == StopCode.USER_INITIATED
    assert (await jobs.cancel_run(running.run_id)).version == cancelled.version  # no-op
    with pytest.raises(NotFound):
        await jobs.run_now("ghost")


async def test_delete_stops_runs_and_is_refused_while_chained_to(env: Env) -> None:
    await env.create("cleanup", task_definition="cleanup")
    await env.create(chain={"always": ["cleanup"]})
    jobs = env.jobs()
    run = await jobs.run_now("cleanup")
    await env.scheduler().reconcile("cleanup")
    with pytest.raises(Conflict, match=r"report chains to cleanup \(chain.always\[0\]\)"):
        await jobs.delete("cleanup")
    await jobs.delete("report")
    await jobs.delete("cleanup")
    assert await env.store.list_jobs() == []
    started = await env.store.list_tasks(started_by=run.run_id)
    assert [t.desired_status for t in started] == [DesiredStatus.STOPPED]
    assert await env.store.get_job_run(run.run_id) is None


async def test_next_fire_times_follow_the_time_zone_across_dst(env: Env) -> None:
    await env.create(schedule="cron(30 1 * * ? *)", timezone="Europe/London")
    jobs = env.jobs()
    after = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)
    times = await jobs.next_fire_times("report", 4, after=after)
    # 01:30 local: GMT (UTC+0) until Sunday 29 March 01:00, then BST (UTC+1), when 01:30
    # does not exist and is skipped (EventBridge's rule)
    assert times == [
        datetime(2026, 3, 28, 1, 30, tzinfo=UTC),
        datetime(2026, 3, 30, 0, 30, tzinfo=UTC),
        datetime(2026, 3, 31, 0, 30, tzinfo=UTC),
        datetime(2026, 4, 1, 0, 30, tzinfo=UTC),
    ]
    default = await jobs.next_fire_times("report", 2)
    assert default[0] > T0 and default[1] - default[0] == timedelta(days=1)
    await env.create("manual")
    assert await jobs.next_fire_times("manual") == []
