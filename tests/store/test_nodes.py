"""Nodes: insert, compare-and-set update, list."""

from __future__ import annotations

import pytest

from hatoba.model.errors import Conflict, NotFound
from hatoba.model.node import NodeStatus
from hatoba.store.sql import SqlStore
from tests.store.conftest import make_node


async def test_put_get_and_compare_and_set(store: SqlStore) -> None:
    created = await store.put_node(make_node("n1", attributes={"zone": "a"}))
    assert created.version == 1
    assert await store.get_node("n1") == created
    assert await store.get_node("n2") is None

    draining = await store.put_node(created.model_copy(update={"status": NodeStatus.DRAINING}))
    assert draining.version == 2
    with pytest.raises(Conflict):
        await store.put_node(created.model_copy(update={"cpu": 1}))
    got = await store.get_node("n1")
    assert got is not None and got.status == NodeStatus.DRAINING and got.cpu == 2048


async def test_insert_of_existing_node_is_conflict(store: SqlStore) -> None:
    await store.put_node(make_node("n1"))
    with pytest.raises(Conflict):
        await store.put_node(make_node("n1"))


async def test_update_of_missing_node_is_not_found(store: SqlStore) -> None:
    with pytest.raises(NotFound):
        await store.put_node(make_node("ghost", version=3))


async def test_list_nodes_by_id(store: SqlStore) -> None:
    for node_id in ("n2", "n1", "n3"):
        await store.put_node(make_node(node_id))
    assert [n.node_id for n in await store.list_nodes()] == ["n1", "n2", "n3"]
