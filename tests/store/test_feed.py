"""The change feed: one row per committed write, in order; waiters wake on writes."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from hatoba.model.errors import Conflict
from hatoba.model.task import LastStatus
from hatoba.model.taskdef import TaskDefinitionStatus
from hatoba.store.sql import SqlStore
from tests.store.conftest import T0, make_node, make_task, make_taskdef


async def test_every_write_is_recorded_in_order(store: SqlStore) -> None:
    assert await store.last_change_seq() == 0
    await store.register_task_definition(make_taskdef("web"))
    task = await store.create_task(make_task("t1"))
    await store.update_task(task.model_copy(update={"last_status": LastStatus.RUNNING}))
    await store.put_node(make_node("n1"))
    await store.set_task_definition_status("web", 1, TaskDefinitionStatus.INACTIVE)

    feed = await store.changes_since(0)
    assert [(c.kind, c.key) for c in feed] == [
        ("taskdef", "web:1"),
        ("task", "t1"),
        ("task", "t1"),
        ("node", "n1"),
        ("taskdef", "web:1"),
    ]
    seqs = [c.seq for c in feed]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert await store.last_change_seq() == seqs[-1]
    assert [c.seq for c in await store.changes_since(seqs[1], limit=2)] == seqs[2:4]
    assert await store.changes_since(seqs[-1]) == []


async def test_failed_writes_record_nothing(store: SqlStore) -> None:
    task = await store.create_task(make_task("t1"))
    await store.update_task(task)
    seq = await store.last_change_seq()
    with pytest.raises(Conflict):
        await store.update_task(task)
    with pytest.raises(Conflict):
        await store.create_task(make_task("t1"))
    assert await store.last_change_seq() == seq


async def test_change_time_comes_from_the_clock(new_store: Any) -> None:
    s = await new_store(clock=lambda: T0 + timedelta(hours=1))
    await s.create_task(make_task("t1"))
    (change,) = await s.changes_since(0)
    assert change.at == T0 + timedelta(hours=1)


async def test_wait_wakes_at_once_for_writes_through_the_same_store(new_store: Any) -> None:
    # A poll interval far beyond the test timeout: only the in-process wake-up can pass.
    s = await new_store(poll_interval=60)
    seq = await s.last_change_seq()
    waiter = asyncio.create_task(s.wait_for_change(seq, timeout=30))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    await s.create_task(make_task("t1"))
    newest = await asyncio.wait_for(waiter, 5)
    assert newest > seq
    assert [c.key for c in await s.changes_since(seq)] == ["t1"]


async def test_wait_sees_other_writers_within_the_poll_interval(new_store: Any) -> None:
    watcher = await new_store(poll_interval=0.05)
    writer = await new_store(poll_interval=60)
    seq = await watcher.last_change_seq()
    waiter = asyncio.create_task(watcher.wait_for_change(seq, timeout=30))
    await asyncio.sleep(0.1)
    assert not waiter.done()
    await writer.put_node(make_node("n1"))
    newest = await asyncio.wait_for(waiter, 5)
    assert newest == await writer.last_change_seq()


async def test_wait_times_out_with_the_current_seq(store: SqlStore) -> None:
    await store.create_task(make_task("t1"))
    seq = await store.last_change_seq()
    assert await store.wait_for_change(seq, timeout=0.1) == seq
    # Already behind: returns at once without waiting.
    assert await asyncio.wait_for(store.wait_for_change(0, timeout=30), 5) == seq


async def test_prune_keeps_recent_changes_and_the_newest_seq(new_store: Any) -> None:
    now = [T0]
    s = await new_store(clock=lambda: now[0])
    for i in range(3):
        await s.create_task(make_task(f"old{i}"))
    now[0] = T0 + timedelta(hours=2)
    await s.create_task(make_task("recent"))
    assert await s.prune_changes(T0 + timedelta(hours=1)) == 3
    reader = await new_store()  # another process: reads the feed from the database
    assert [c.key for c in await reader.changes_since(0)] == ["recent"]
    newest = await s.last_change_seq()
    # everything is old now, but the newest entry stays so the seq never goes back
    assert await s.prune_changes(T0 + timedelta(days=1)) == 0
    assert await s.last_change_seq() == newest
    await s.create_task(make_task("next"))
    assert await s.last_change_seq() == newest + 1
