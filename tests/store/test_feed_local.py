"""The feed from memory: a process's own changes come back with the committed object; a
change it did not make (another process's) sends readers to the database, as before."""

from __future__ import annotations

import asyncio
from typing import Any

from hatoba.model.task import LastStatus, Task
from hatoba.store.sql import SqlStore
from tests.store.conftest import make_node, make_task, make_taskdef


async def test_own_changes_come_with_the_committed_object(store: SqlStore) -> None:
    seq = await store.last_change_seq()
    created = await store.create_task(make_task("t1"))
    updated = await store.update_task(
        created.model_copy(update={"last_status": LastStatus.RUNNING})
    )
    feed = await store.changes_since(seq)
    assert [(c.kind, c.key) for c in feed] == [("task", "t1"), ("task", "t1")]
    assert [c.value for c in feed] == [created, updated]
    assert isinstance(feed[1].value, Task) and feed[1].value.version == 2
    assert store.known_change_seq() == feed[-1].seq
    # the same rows as the database has, values aside
    assert [(c.seq, c.kind, c.key, c.at) for c in feed] == [
        (c.seq, c.kind, c.key, c.at) for c in await _from_database(store, seq)
    ]


async def test_another_process_change_is_read_from_the_database(new_store: Any) -> None:
    mine = await new_store(poll_interval=0.05)
    other = await new_store(poll_interval=60)
    seq = await mine.last_change_seq()
    await mine.create_task(make_task("a"))
    await other.put_node(make_node("n1"))  # a seq `mine` did not commit
    await mine.create_task(make_task("b"))
    newest = await asyncio.wait_for(mine.wait_for_change(seq, timeout=30), 5)
    assert newest > seq
    feed = await mine.changes_since(seq)
    assert [(c.kind, c.key) for c in feed] == [("task", "a"), ("node", "n1"), ("task", "b")]
    assert all(c.value is None for c in feed)  # read back: no objects
    # past the gap, memory serves again
    await mine.create_task(make_task("c"))
    (last,) = await mine.changes_since(feed[-1].seq)
    assert last.key == "c" and isinstance(last.value, Task)


async def test_placement_inputs_reads_taskdef_nodes_and_reservations(store: SqlStore) -> None:
    await store.register_task_definition(make_taskdef("web"))
    await store.register_task_definition(make_taskdef("web"))
    await store.put_node(make_node("n1"))
    await store.create_task(make_task("a", node_id="n1", cpu=256, memory=128, group="g"))
    td, nodes, reserved = await store.placement_inputs("web")
    assert td is not None and td.revision == 2
    assert [n.node_id for n in nodes] == ["n1"]
    assert {n: (x.cpu, x.memory, x.groups) for n, x in reserved.items()} == {
        "n1": (256, 128, {"g": 1})
    }
    td1, _, _ = await store.placement_inputs("web", 1)
    assert td1 is not None and td1.revision == 1
    assert await store.placement_inputs("nope") == (None, [], {})


async def _from_database(store: SqlStore, seq: int) -> list[Any]:
    from sqlalchemy import select

    from hatoba.store.schema import changes

    stmt = select(changes).where(changes.c.seq > seq).order_by(changes.c.seq)
    return list(await store._runner.run(lambda tx: tx.conn.execute(stmt).all(), write=False))
