"""Jobs (compare-and-set, change feed), runs (the exactly-once tick claim, also raced between
two stores on one database; compare-and-set with chained runs and notifications in the same
transaction; paging; active runs; retention), job events, and the webhook outbox."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from hatoba.model.errors import Conflict, NotFound
from hatoba.model.job import (
    MAX_JOB_EVENTS_KEPT,
    DeliveryStatus,
    Job,
    JobEvent,
    JobNotification,
    JobRun,
    NotificationEvent,
    RunStatus,
    RunTrigger,
)
from hatoba.store.sql import SqlStore
from tests.store.conftest import T0


def make_job(name: str = "nightly", **fields: Any) -> Job:
    fields.setdefault("task_definition", "report:1")
    return Job(job_name=name, created_at=T0, updated_at=T0, last_tick=T0, **fields)


def make_run(run_id: str, job: str = "nightly", minutes: int | None = 0, **fields: Any) -> JobRun:
    tick = None if minutes is None else T0 + timedelta(minutes=minutes)
    fields.setdefault("trigger", RunTrigger.SCHEDULE if tick else RunTrigger.MANUAL)
    return JobRun(run_id=run_id, job_name=job, tick=tick, created_at=T0, **fields)


def note(run_id: str, job: str = "nightly", minutes: int = 0, **fields: Any) -> JobNotification:
    return JobNotification(
        job_name=job,
        run_id=run_id,
        event=fields.pop("event", NotificationEvent.START),
        url="http://127.0.0.1:9/hook",
        payload={"runId": run_id},
        next_attempt_at=T0 + timedelta(minutes=minutes),
        created_at=T0,
        **fields,
    )


# ---- jobs ----


async def test_job_create_get_list_update_delete(store: SqlStore) -> None:
    created = await store.create_job(make_job("nightly", schedule="cron(0 3 * * ? *)"))
    assert created.version == 1
    await store.create_job(make_job("hourly"))
    assert await store.get_job("nightly") == created
    assert await store.get_job("missing") is None
    assert [j.job_name for j in await store.list_jobs()] == ["hourly", "nightly"]
    with pytest.raises(Conflict, match="already exists"):
        await store.create_job(make_job("nightly"))
    updated = await store.update_job(created.model_copy(update={"enabled": False}))
    assert updated.version == 2 and not updated.enabled
    with pytest.raises(Conflict, match="version 1, now 2"):
        await store.update_job(created)
    await store.delete_job("nightly")
    assert await store.get_job("nightly") is None
    with pytest.raises(NotFound):
        await store.delete_job("nightly")
    with pytest.raises(NotFound):
        await store.update_job(updated)


async def test_job_and_run_writes_are_on_the_feed_with_objects(
    store: SqlStore, new_store: Any
) -> None:
    other = await new_store()
    start = await store.last_change_seq()
    job = await store.create_job(make_job())
    run = await store.claim_tick(make_run("r1"))
    assert run is not None
    assert await store.claim_tick(make_run("r2")) is None  # records nothing
    done = await store.update_job_run(run.model_copy(update={"status": RunStatus.SUCCEEDED}))
    await store.delete_job("nightly")
    feed = await store.changes_since(start)
    assert [(c.kind, c.key) for c in feed] == [
        ("job", "nightly"),
        ("jobrun", "r1"),
        ("jobrun", "r1"),
        ("job", "nightly"),
    ]
    assert [c.value for c in feed] == [job, run, done, None]
    theirs = await other.changes_since(start)
    assert [(c.kind, c.key) for c in theirs] == [(c.kind, c.key) for c in feed]


async def test_delete_job_takes_its_runs_events_and_pending_notifications(
    store: SqlStore,
) -> None:
    await store.create_job(make_job("a"))
    await store.create_job(make_job("b"))
    await store.claim_tick(make_run("a1", "a"), [note("a1", "a")])
    await store.claim_tick(make_run("b1", "b"), [note("b1", "b")])
    await store.append_job_events([JobEvent(job_name="a", created_at=T0, message="x")])
    await store.delete_job("a")
    assert await store.get_job_run("a1") is None
    assert await store.list_job_events("a") == []
    assert [n.run_id for n in await store.list_job_notifications()] == ["b1"]
    assert await store.get_job_run("b1") is not None


# ---- runs ----


async def test_claim_tick_is_once_per_job_and_tick(store: SqlStore) -> None:
    first = await store.claim_tick(make_run("r1", minutes=5), [note("r1")])
    assert first is not None and first.version == 1
    assert await store.claim_tick(make_run("r2", minutes=5), [note("r2")]) is None
    assert await store.get_job_run("r2") is None
    assert [n.run_id for n in await store.list_job_notifications()] == ["r1"]  # loser's: none
    # another tick, or another job at the same tick, is a different claim
    assert await store.claim_tick(make_run("r3", minutes=6)) is not None
    assert await store.claim_tick(make_run("r4", "other", minutes=5)) is not None
    # manual runs have no tick: any number of them
    await store.create_job_run(make_run("m1", minutes=None))
    await store.create_job_run(make_run("m2", minutes=None))
    with pytest.raises(ValueError, match="tick"):
        await store.claim_tick(make_run("m3", minutes=None))
    with pytest.raises(Conflict):
        await store.create_job_run(make_run("m1", minutes=None))


async def test_two_stores_racing_for_the_same_ticks_claim_each_once(new_store: Any) -> None:
    """Two control planes (two stores on one database) claim the same 40 ticks at once."""
    a, b = await new_store(), await new_store()
    ticks = range(40)

    async def claim_all(store: SqlStore, side: str) -> list[int]:
        won = []
        for m in ticks:
            if await store.claim_tick(make_run(f"{side}{m}", minutes=m)) is not None:
                won.append(m)
        return won

    async def claim_parallel(store: SqlStore, side: str) -> list[int]:
        got = await asyncio.gather(
            *(store.claim_tick(make_run(f"{side}p{m}", minutes=100 + m)) for m in ticks)
        )
        return [100 + m for m, r in zip(ticks, got, strict=True) if r is not None]

    won_a, won_b = await asyncio.gather(claim_all(a, "a"), claim_all(b, "b"))
    par_a, par_b = await asyncio.gather(claim_parallel(a, "a"), claim_parallel(b, "b"))
    assert sorted(won_a + won_b) == list(ticks)
    assert sorted(par_a + par_b) == [100 + m for m in ticks]
    runs = await a.list_job_runs("nightly", limit=1000)
    assert len(runs) == 80
    assert len({r.tick for r in runs}) == 80


async def test_update_run_is_compare_and_set_with_chained_runs_and_notes_atomic(
    store: SqlStore,
) -> None:
    run = await store.claim_tick(make_run("r1"))
    assert run is not None
    child = make_run("c1", "report", minutes=None, trigger=RunTrigger.CHAIN, parent_run_id="r1")
    done = run.model_copy(update={"status": RunStatus.SUCCEEDED, "finished_at": T0})
    stored = await store.update_job_run(
        done, new_runs=[child], notifications=[note("r1", event=NotificationEvent.SUCCESS)]
    )
    assert stored.version == 2
    got = await store.get_job_run("c1")
    assert got is not None and got.parent_run_id == "r1" and got.version == 1
    # a stale writer: nothing of its transaction lands
    stale = done.model_copy(update={"status": RunStatus.FAILED})
    other_child = make_run("c2", "report", minutes=None, trigger=RunTrigger.CHAIN)
    with pytest.raises(Conflict, match="version 1, now 2"):
        await store.update_job_run(
            stale, new_runs=[other_child], notifications=[note("r1", event="failure")]
        )
    assert await store.get_job_run("c2") is None
    assert [n.event for n in await store.list_job_notifications()] == ["success"]
    with pytest.raises(NotFound):
        await store.update_job_run(make_run("ghost", version=1))


async def test_runs_newest_first_paged_and_active(store: SqlStore) -> None:
    for i in range(7):
        status = RunStatus.RUNNING if i in (2, 5) else RunStatus.SUCCEEDED
        finished = None if status == RunStatus.RUNNING else T0
        await store.claim_tick(make_run(f"r{i}", minutes=i, status=status, finished_at=finished))
    await store.claim_tick(make_run("x0", "other", status=RunStatus.PENDING))
    page1 = await store.list_job_runs("nightly", limit=3)
    assert [r.run_id for r in page1] == ["r6", "r5", "r4"]
    page2 = await store.list_job_runs("nightly", limit=3, before=page1[-1].run_id)
    assert [r.run_id for r in page2] == ["r3", "r2", "r1"]
    assert [r.run_id for r in await store.active_job_runs("nightly")] == ["r2", "r5"]
    assert [r.run_id for r in await store.active_job_runs()] == ["r2", "r5", "x0"]


async def test_delete_runs_finished_before(store: SqlStore) -> None:
    for i in range(4):
        finished = T0 + timedelta(days=i)
        await store.claim_tick(
            make_run(f"r{i}", minutes=i, status=RunStatus.SUCCEEDED, finished_at=finished)
        )
    await store.claim_tick(make_run("live", minutes=9, status=RunStatus.RUNNING))
    await store.claim_tick(make_run("o1", "other", status=RunStatus.FAILED, finished_at=T0))
    assert await store.delete_job_runs("nightly", T0 + timedelta(days=2)) == 2
    assert [r.run_id for r in await store.list_job_runs("nightly")] == ["r3", "r2", "live"]
    assert await store.get_job_run("o1") is not None


# ---- events ----


async def test_job_events_newest_first_and_pruned(store: SqlStore) -> None:
    events = [
        JobEvent(job_name="a", created_at=T0, message=f"m{i}")
        for i in range(MAX_JOB_EVENTS_KEPT + 5)
    ]
    await store.append_job_events(events[:50])
    await store.append_job_events(events[50:])
    await store.append_job_events([JobEvent(job_name="b", created_at=T0, message="b")])
    got = await store.list_job_events("a", limit=1000)
    assert len(got) == MAX_JOB_EVENTS_KEPT
    assert got[0].message == f"m{MAX_JOB_EVENTS_KEPT + 4}" and got[-1].message == "m5"
    newer = await store.list_job_events("a", after_id=got[1].id)
    assert [e.message for e in newer] == [got[0].message]
    assert [e.message for e in await store.list_job_events("b")] == ["b"]


# ---- the webhook outbox ----


async def test_notifications_due_retried_delivered_and_purged(store: SqlStore) -> None:
    await store.create_job_run(make_run("r1", minutes=None), [note("r1", minutes=0)])
    await store.create_job_run(make_run("r2", minutes=None), [note("r2", minutes=5)])
    assert await store.next_job_notification_at() == T0
    due = await store.due_job_notifications(T0 + timedelta(minutes=1))
    assert [n.run_id for n in due] == ["r1"]
    first = due[0]
    assert first.id > 0 and first.payload == {"runId": "r1"}
    retry = first.model_copy(
        update={
            "attempts": 1,
            "next_attempt_at": T0 + timedelta(minutes=10),
            "last_error": "HTTP 500",
        }
    )
    await store.update_job_notification(retry)
    assert await store.next_job_notification_at() == T0 + timedelta(minutes=5)
    later = await store.due_job_notifications(T0 + timedelta(minutes=10))
    assert [n.run_id for n in later] == ["r2", "r1"]
    assert later[1].attempts == 1 and later[1].last_error == "HTTP 500"
    for n in later:
        await store.update_job_notification(
            n.model_copy(update={"status": DeliveryStatus.DELIVERED, "delivered_at": T0})
        )
    assert await store.next_job_notification_at() is None
    assert await store.due_job_notifications(T0 + timedelta(days=1)) == []
    assert await store.delete_job_notifications(T0 + timedelta(seconds=1)) == 2
    assert await store.list_job_notifications() == []
