"""Services (compare-and-set, change feed), their events (ids, paging, pruning), their
tasks, leases (atomic between stores on one database), and placement ignoring unplaced tasks."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import make_url
from sqlalchemy.dialects import sqlite

from hatoba.model.errors import Conflict, NotFound
from hatoba.model.service import MAX_EVENTS_KEPT, Service, ServiceEvent, service_group
from hatoba.model.task import DesiredStatus, LastStatus
from hatoba.store import sql_services
from hatoba.store.sql import SqlStore
from tests.store.conftest import T0, make_node, make_task, make_taskdef


def make_service(name: str = "web", **fields: Any) -> Service:
    fields.setdefault("task_definition", "web:1")
    return Service(service_name=name, created_at=T0, updated_at=T0, **fields)


def event(name: str, message: str, minutes: int = 0) -> ServiceEvent:
    return ServiceEvent(
        service_name=name, created_at=T0 + timedelta(minutes=minutes), message=message
    )


# ---- services ----


async def test_create_get_list(store: SqlStore) -> None:
    created = await store.create_service(make_service("web", desired_count=3))
    assert created.version == 1
    await store.create_service(make_service("api"))
    got = await store.get_service("web")
    assert got == created
    assert got is not None and got.desired_count == 3 and got.created_at == T0
    assert await store.get_service("missing") is None
    assert [s.service_name for s in await store.list_services()] == ["api", "web"]


async def test_create_duplicate_is_conflict(store: SqlStore) -> None:
    await store.create_service(make_service("web"))
    with pytest.raises(Conflict):
        await store.create_service(make_service("web", desired_count=9))
    got = await store.get_service("web")
    assert got is not None and got.desired_count == 0


async def test_update_is_compare_and_set(store: SqlStore) -> None:
    read = await store.create_service(make_service("web"))
    mine = read.model_copy(update={"desired_count": 5})
    theirs = read.model_copy(update={"desired_count": 7})
    updated = await store.update_service(mine)
    assert updated.version == 2
    with pytest.raises(Conflict, match="version 1, now 2"):
        await store.update_service(theirs)
    assert await store.get_service("web") == updated
    again = await store.update_service(updated.model_copy(update={"desired_count": 6}))
    assert again.version == 3


async def test_racing_updates_from_two_stores_one_wins(new_store: Any) -> None:
    a, b = await new_store(), await new_store()
    read = await a.create_service(make_service("web"))
    results = await asyncio.gather(
        a.update_service(read.model_copy(update={"desired_count": 2})),
        b.update_service(read.model_copy(update={"desired_count": 3})),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["Conflict", "Service"]
    winner = next(r for r in results if not isinstance(r, BaseException))
    assert await b.get_service("web") == winner


async def test_update_of_deleted_service_is_not_found(store: SqlStore) -> None:
    read = await store.create_service(make_service("web"))
    await store.delete_service("web")
    with pytest.raises(NotFound):
        await store.update_service(read)
    with pytest.raises(NotFound):
        await store.update_service(make_service("ghost", version=1))


async def test_delete_takes_the_events_too(store: SqlStore) -> None:
    await store.create_service(make_service("web"))
    await store.create_service(make_service("api"))
    await store.append_service_events([event("web", "one"), event("api", "kept")])
    await store.delete_service("web")
    assert await store.get_service("web") is None
    assert await store.list_service_events("web") == []
    assert [e.message for e in await store.list_service_events("api")] == ["kept"]
    with pytest.raises(NotFound):
        await store.delete_service("web")
    # the name is free again, with a fresh log
    recreated = await store.create_service(make_service("web"))
    assert recreated.version == 1
    assert await store.list_service_events("web") == []


async def test_writes_are_on_the_change_feed_with_their_objects(new_store: Any) -> None:
    store, other = await new_store(), await new_store()
    start = await store.last_change_seq()
    created = await store.create_service(make_service("web"))
    updated = await store.update_service(created.model_copy(update={"desired_count": 4}))
    await store.append_service_events([event("web", "not a change")])
    await store.acquire_lease("leader", "me", 10, T0)
    await store.release_lease("leader", "me")
    await store.delete_service("web")
    feed = await store.changes_since(start)
    assert [(c.kind, c.key) for c in feed] == [("service", "web")] * 3
    assert [c.value for c in feed] == [created, updated, None]
    # another process reads the same rows back from the database, without objects
    theirs = await other.changes_since(start)
    assert [(c.seq, c.kind, c.key) for c in theirs] == [(c.seq, c.kind, c.key) for c in feed]
    assert all(c.value is None for c in theirs)


async def test_failed_service_writes_record_nothing(store: SqlStore) -> None:
    read = await store.create_service(make_service("web"))
    await store.update_service(read)
    seq = await store.last_change_seq()
    with pytest.raises(Conflict):
        await store.create_service(make_service("web"))
    with pytest.raises(Conflict):
        await store.update_service(read)
    with pytest.raises(NotFound):
        await store.delete_service("ghost")
    assert await store.last_change_seq() == seq


# ---- events ----


async def test_events_newest_first_with_ids_in_order(store: SqlStore) -> None:
    await store.append_service_events([event("web", "a"), event("api", "x"), event("web", "b")])
    await store.append_service_events([event("web", "c", minutes=1)])
    await store.append_service_events([])
    found = await store.list_service_events("web")
    assert [e.message for e in found] == ["c", "b", "a"]
    ids = [e.id for e in found]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 3 and all(ids)
    assert found[0].created_at == T0 + timedelta(minutes=1)
    assert found[0].service_name == "web"
    assert [e.message for e in await store.list_service_events("api")] == ["x"]
    assert await store.list_service_events("nobody") == []


async def test_events_limit_and_after_id(store: SqlStore) -> None:
    await store.append_service_events([event("web", str(i)) for i in range(10)])
    everything = await store.list_service_events("web")
    assert [e.message for e in everything] == [str(i) for i in reversed(range(10))]
    assert [e.message for e in await store.list_service_events("web", limit=3)] == [
        "9",
        "8",
        "7",
    ]
    assert await store.list_service_events("web", limit=0) == []
    seen = everything[3].id  # message "6"
    newer = await store.list_service_events("web", after_id=seen)
    assert [e.message for e in newer] == ["9", "8", "7"]
    assert await store.list_service_events("web", after_id=everything[0].id) == []
    await store.append_service_events([event("web", "10")])
    assert [e.message for e in await store.list_service_events("web", after_id=seen)] == [
        "10",
        "9",
        "8",
        "7",
    ]


async def test_events_pruned_to_the_newest_per_service(store: SqlStore) -> None:
    await store.append_service_events([event("other", "o")])
    # one batch over the limit, then batches that push the oldest out
    await store.append_service_events([event("web", str(i)) for i in range(MAX_EVENTS_KEPT + 20)])
    found = await store.list_service_events("web", limit=1000)
    assert len(found) == MAX_EVENTS_KEPT
    assert found[0].message == str(MAX_EVENTS_KEPT + 19) and found[-1].message == "20"
    for i in range(5):
        await store.append_service_events([event("web", f"late{i}"), event("other", f"o{i}")])
    found = await store.list_service_events("web", limit=1000)
    assert len(found) == MAX_EVENTS_KEPT
    assert [e.message for e in found[:2]] == ["late4", "late3"]
    assert found[-1].message == "25"
    assert len(await store.list_service_events("other", limit=1000)) == 6


async def test_events_from_two_stores_interleave_with_distinct_ids(new_store: Any) -> None:
    a, b = await new_store(), await new_store()
    await asyncio.gather(
        *(
            s.append_service_events([event("web", f"{tag}{i}")])
            for i in range(10)
            for s, tag in ((a, "a"), (b, "b"))
        )
    )
    found = await a.list_service_events("web")
    assert len(found) == 20 and len({e.id for e in found}) == 20
    assert sorted(e.message for e in found) == sorted(f"{t}{i}" for t in "ab" for i in range(10))


# ---- tasks of a service ----


async def test_service_tasks_live_and_recently_stopped(store: SqlStore) -> None:
    group = service_group("web")
    stopped = {"desired_status": DesiredStatus.STOPPED, "last_status": LastStatus.STOPPED}
    await store.create_task(make_task("live2", minutes=5, node_id="n1", group=group))
    await store.create_task(
        make_task("waiting", minutes=4, group=group, last_status=LastStatus.PROVISIONING)
    )
    await store.create_task(
        make_task("old", minutes=1, group=group, stopped_at=T0 + timedelta(minutes=2), **stopped)
    )
    await store.create_task(
        make_task("recent", minutes=2, group=group, stopped_at=T0 + timedelta(minutes=9), **stopped)
    )
    await store.create_task(
        make_task("edge", minutes=3, group=group, stopped_at=T0 + timedelta(minutes=6), **stopped)
    )
    await store.create_task(make_task("live1", minutes=0, node_id="n1", group=group))
    await store.create_task(make_task("api", minutes=0, node_id="n1", group="service:api"))
    await store.create_task(make_task("loose", minutes=0, node_id="n1"))

    cutoff = T0 + timedelta(minutes=6)  # "edge" stopped exactly then: included
    assert [t.task_id for t in await store.service_tasks(group, cutoff)] == [
        "live1",
        "recent",
        "edge",
        "waiting",
        "live2",
    ]
    assert [t.task_id for t in await store.service_tasks(group, None)] == [
        "live1",
        "old",
        "recent",
        "edge",
        "waiting",
        "live2",
    ]
    later = T0 + timedelta(hours=1)
    assert [t.task_id for t in await store.service_tasks(group, later)] == [
        "live1",
        "waiting",
        "live2",
    ]
    assert await store.service_tasks("service:nobody", None) == []
    got = await store.service_tasks("service:api", later)
    assert [t.task_id for t in got] == ["api"] and got[0].node_id == "n1"


async def test_service_tasks_use_the_group_index(store: SqlStore, db_url: str) -> None:
    if store.dialect != "sqlite":
        pytest.skip("query plans checked on SQLite")
    path = make_url(db_url).database
    assert path is not None
    conn = sqlite3.connect(path)
    try:
        for stmt in (sql_services._GROUP_TASKS, sql_services._GROUP_TASKS_SINCE):
            sql = str(stmt.compile(dialect=sqlite.dialect()))
            plan = conn.execute("EXPLAIN QUERY PLAN " + sql, ["x"] * sql.count("?")).fetchall()
            assert any("ix_tasks_group_name" in row[-1] for row in plan), plan
    finally:
        conn.close()


async def test_unplaced_tasks_hold_nothing_on_any_node(store: SqlStore) -> None:
    await store.register_task_definition(make_taskdef("web"))
    await store.put_node(make_node("n1"))
    await store.create_task(make_task("placed", node_id="n1", cpu=256, memory=128, group="g"))
    await store.create_task(
        make_task("waiting", cpu=512, memory=512, group="g", last_status=LastStatus.PROVISIONING)
    )
    load = await store.node_load()
    assert list(load) == ["n1"]
    assert (load["n1"].cpu, load["n1"].memory, load["n1"].groups) == (256, 128, {"g": 1})
    assert await store.node_reservations() == {"n1": (256, 128)}
    _, nodes, placement_load = await store.placement_inputs("web")
    assert [n.node_id for n in nodes] == ["n1"]
    assert list(placement_load) == ["n1"] and placement_load["n1"].tasks == 1


# ---- leases ----


async def test_lease_acquire_renew_refuse_expire(store: SqlStore) -> None:
    assert await store.acquire_lease("leader", "a", 10, T0)
    assert await store.acquire_lease("leader", "a", 10, T0 + timedelta(seconds=5))  # renew
    # held by a until T0+15s now
    assert not await store.acquire_lease("leader", "b", 10, T0 + timedelta(seconds=14))
    assert await store.acquire_lease("other", "b", 10, T0)  # leases are independent
    assert await store.acquire_lease("leader", "b", 10, T0 + timedelta(seconds=15))  # expired
    assert not await store.acquire_lease("leader", "a", 10, T0 + timedelta(seconds=16))
    assert await store.acquire_lease("leader", "b", 10, T0 + timedelta(seconds=16))


async def test_release_frees_the_lease_at_once(store: SqlStore) -> None:
    assert await store.acquire_lease("leader", "a", 60, T0)
    await store.release_lease("leader", "b")  # not b's: nothing happens
    assert not await store.acquire_lease("leader", "b", 60, T0 + timedelta(seconds=1))
    await store.release_lease("leader", "a")
    assert await store.acquire_lease("leader", "b", 60, T0 + timedelta(seconds=1))
    await store.release_lease("leader", "a")  # no longer a's: b keeps it
    assert not await store.acquire_lease("leader", "a", 60, T0 + timedelta(seconds=2))
    await store.release_lease("nothing", "a")  # absent: no error


async def test_lease_race_between_stores_has_one_winner(new_store: Any) -> None:
    """Two stores on one database, as two control planes: each round, both try at once for
    a fresh lease (the insert race) and for an expired one (the update race)."""
    a, b = await new_store(), await new_store()
    # two calls per store, on separate connections (PostgreSQL) or queued on one (SQLite)
    contenders = [(a, "a1"), (a, "a2"), (b, "b1"), (b, "b2")]
    ttl = 10.0
    for rnd in range(40):
        now = T0 + timedelta(seconds=rnd * 100)  # every earlier lease has expired
        for name in (f"fresh{rnd}", "shared"):
            won = await asyncio.gather(
                *(s.acquire_lease(name, holder, ttl, now) for s, holder in contenders)
            )
            assert won.count(True) == 1, (rnd, name, won)
            # the winner can renew it, from either store; nobody else can take it
            winner = contenders[won.index(True)][1]
            for s, holder in contenders:
                assert await s.acquire_lease(name, holder, ttl, now) == (holder == winner)
            assert await b.acquire_lease(name, winner, ttl, now)
