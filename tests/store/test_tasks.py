"""Tasks: create/get, compare-and-set updates, list filters, prefixes, retention."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from hatoba.model.errors import Conflict, NotFound
from hatoba.model.task import DesiredStatus, LastStatus
from hatoba.store.sql import SqlStore
from tests.store.conftest import T0, make_task


async def test_create_and_get(store: SqlStore) -> None:
    created = await store.create_task(make_task("t1", node_id="n1", started_by="me"))
    assert created.version == 1
    got = await store.get_task("t1")
    assert got == created
    assert got is not None and got.created_at == T0
    assert await store.get_task("missing") is None


async def test_create_duplicate_is_conflict(store: SqlStore) -> None:
    await store.create_task(make_task("t1"))
    with pytest.raises(Conflict):
        await store.create_task(make_task("t1"))


async def test_update_is_compare_and_set(store: SqlStore) -> None:
    read = await store.create_task(make_task("t1"))
    mine = read.model_copy(update={"last_status": LastStatus.RUNNING, "node_id": "n1"})
    theirs = read.model_copy(update={"desired_status": DesiredStatus.STOPPED})

    updated = await store.update_task(mine)
    assert updated.version == 2
    with pytest.raises(Conflict):
        await store.update_task(theirs)

    got = await store.get_task("t1")
    assert got == updated
    assert got is not None and got.desired_status == DesiredStatus.RUNNING
    # The indexed columns moved with the body.
    assert [t.task_id for t in await store.list_tasks(node_id="n1")] == ["t1"]


async def test_racing_writers_from_two_stores_one_wins(new_store: Any) -> None:
    a, b = await new_store(), await new_store()
    read = await a.create_task(make_task("t1"))
    results = await asyncio.gather(
        a.update_task(read.model_copy(update={"last_status": LastStatus.PENDING})),
        b.update_task(read.model_copy(update={"last_status": LastStatus.STOPPED})),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["Conflict", "Task"]
    winner = next(r for r in results if not isinstance(r, BaseException))
    assert await b.get_task("t1") == winner


async def test_update_of_missing_task_is_not_found(store: SqlStore) -> None:
    with pytest.raises(NotFound):
        await store.update_task(make_task("ghost", version=1))


async def test_list_filters_newest_first(store: SqlStore) -> None:
    await store.create_task(make_task("a", "web", 1, node_id="n1", group="service:web"))
    await store.create_task(make_task("b", "web", 2, node_id="n2", started_by="cron"))
    await store.create_task(make_task("c", "jobs", 3, node_id="n1", last_status=LastStatus.RUNNING))
    await store.create_task(
        make_task(
            "d",
            "jobs",
            4,
            desired_status=DesiredStatus.STOPPED,
            last_status=LastStatus.STOPPED,
            started_by="cron",
        )
    )

    async def ids(**kw: Any) -> list[str]:
        return [t.task_id for t in await store.list_tasks(**kw)]

    assert await ids() == ["d", "c", "b", "a"]
    assert await ids(node_id="n1") == ["c", "a"]
    assert await ids(family="web") == ["b", "a"]
    assert await ids(desired_status=DesiredStatus.STOPPED) == ["d"]
    assert await ids(last_statuses=[LastStatus.RUNNING, LastStatus.STOPPED]) == ["d", "c"]
    assert await ids(last_statuses=[]) == []
    assert await ids(started_by="cron") == ["d", "b"]
    assert await ids(group="service:web") == ["a"]
    assert await ids(started_by="cron", family="web") == ["b"]
    assert await ids(limit=2) == ["d", "c"]


async def test_find_by_prefix_treats_wildcards_literally(store: SqlStore) -> None:
    for task_id in ("abc1", "abc2", "abd", "a%c", "a_c"):
        await store.create_task(make_task(task_id))
    assert [t.task_id for t in await store.find_tasks_by_prefix("abc")] == ["abc1", "abc2"]
    assert [t.task_id for t in await store.find_tasks_by_prefix("ab", limit=5)] == [
        "abc1",
        "abc2",
        "abd",
    ]
    assert [t.task_id for t in await store.find_tasks_by_prefix("a%")] == ["a%c"]
    assert [t.task_id for t in await store.find_tasks_by_prefix("a_")] == ["a_c"]
    assert await store.find_tasks_by_prefix("zzz") == []


async def test_delete_stopped_tasks_before_cutoff(store: SqlStore) -> None:
    def stopped(task_id: str, minutes: int) -> Any:
        return make_task(
            task_id,
            desired_status=DesiredStatus.STOPPED,
            last_status=LastStatus.STOPPED,
            stopped_at=T0 + timedelta(minutes=minutes),
        )

    await store.create_task(stopped("old1", 1))
    await store.create_task(stopped("old2", 2))
    await store.create_task(stopped("recent", 30))
    await store.create_task(make_task("running", last_status=LastStatus.RUNNING))
    # Stopping but not yet STOPPED: retention must not take it even with a stopped_at.
    await store.create_task(make_task("stopping", last_status=LastStatus.STOPPING, stopped_at=T0))
    before = await store.last_change_seq()

    deleted = await store.delete_stopped_tasks(T0 + timedelta(minutes=10))
    assert deleted == ["old1", "old2"]
    remaining = sorted(t.task_id for t in await store.list_tasks())
    assert remaining == ["recent", "running", "stopping"]
    assert [(c.kind, c.key) for c in await store.changes_since(before)] == [
        ("task", "old1"),
        ("task", "old2"),
    ]
    assert await store.delete_stopped_tasks(T0 + timedelta(minutes=10)) == []


async def test_node_reservations_count_tasks_not_yet_stopped(store: SqlStore) -> None:
    await store.create_task(make_task("a", node_id="n1", cpu=256, memory=128))
    await store.create_task(make_task("b", node_id="n1", cpu=512, memory=64))
    await store.create_task(make_task("c", node_id="n2", cpu=1, memory=2))
    done = await store.create_task(make_task("d", node_id="n2", cpu=1000, memory=1000))
    await store.create_task(make_task("e", cpu=7, memory=7))  # not placed
    done.last_status = LastStatus.STOPPED
    await store.update_task(done)
    assert await store.node_reservations() == {"n1": (768, 192), "n2": (1, 2)}


async def test_node_load_counts_live_tasks_per_group(store: SqlStore) -> None:
    await store.create_task(make_task("a", node_id="n1", cpu=256, memory=128, group="g1"))
    await store.create_task(make_task("b", node_id="n1", cpu=512, memory=64, group="g1"))
    await store.create_task(make_task("c", node_id="n1", cpu=1, memory=2, group="g2"))
    done = await store.create_task(make_task("d", node_id="n2", cpu=9, memory=9, group="g1"))
    done.last_status = LastStatus.STOPPED
    await store.update_task(done)
    load = await store.node_load()
    assert list(load) == ["n1"]
    assert (load["n1"].cpu, load["n1"].memory, load["n1"].tasks) == (769, 194, 3)
    assert load["n1"].groups == {"g1": 2, "g2": 1}
