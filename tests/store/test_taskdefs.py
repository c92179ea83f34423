"""Task definitions: revisions assigned atomically, never reused; latest ACTIVE; deregister."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from hatoba.model.errors import NotFound
from hatoba.model.taskdef import TaskDefinitionStatus
from hatoba.store.sql import SqlStore
from tests.store.conftest import make_taskdef


async def test_register_assigns_revisions_and_round_trips(store: SqlStore) -> None:
    first = await store.register_task_definition(make_taskdef("web"))
    second = await store.register_task_definition(make_taskdef("web"))
    other = await store.register_task_definition(make_taskdef("worker"))
    assert (first.revision, second.revision, other.revision) == (1, 2, 1)
    assert first.status == TaskDefinitionStatus.ACTIVE
    assert first.registered_at is not None and first.registered_at.tzinfo is not None

    got = await store.get_task_definition("web", 1)
    assert got == first
    assert got is not None and got.container_definitions[0].name == "app"
    assert await store.get_task_definition("web", 9) is None
    assert await store.get_task_definition("nope") is None


async def test_latest_active_skips_deregistered(store: SqlStore) -> None:
    for _ in range(3):
        await store.register_task_definition(make_taskdef("web"))
    latest = await store.get_task_definition("web")
    assert latest is not None and latest.revision == 3

    gone = await store.set_task_definition_status("web", 3, TaskDefinitionStatus.INACTIVE)
    assert gone.status == TaskDefinitionStatus.INACTIVE and gone.deregistered_at is not None
    latest = await store.get_task_definition("web")
    assert latest is not None and latest.revision == 2
    stored = await store.get_task_definition("web", 3)
    assert stored is not None and stored.status == TaskDefinitionStatus.INACTIVE

    # Deregistering again changes nothing, including the time it happened.
    again = await store.set_task_definition_status("web", 3, TaskDefinitionStatus.INACTIVE)
    assert again.deregistered_at == gone.deregistered_at


async def test_set_status_of_missing_revision_is_not_found(store: SqlStore) -> None:
    with pytest.raises(NotFound):
        await store.set_task_definition_status("web", 1, TaskDefinitionStatus.INACTIVE)


async def test_list_orders_by_family_then_revision_and_filters(store: SqlStore) -> None:
    for family in ("worker", "web", "worker", "web", "web"):
        await store.register_task_definition(make_taskdef(family))
    await store.set_task_definition_status("web", 2, TaskDefinitionStatus.INACTIVE)

    everything = [td.family + f":{td.revision}" for td in await store.list_task_definitions()]
    assert everything == ["web:1", "web:2", "web:3", "worker:1", "worker:2"]
    web = await store.list_task_definitions(family="web")
    assert [td.revision for td in web] == [1, 2, 3]
    active = await store.list_task_definitions(status=TaskDefinitionStatus.ACTIVE)
    assert [(td.family, td.revision) for td in active] == [
        ("web", 1),
        ("web", 3),
        ("worker", 1),
        ("worker", 2),
    ]
    inactive = await store.list_task_definitions("web", TaskDefinitionStatus.INACTIVE)
    assert [td.revision for td in inactive] == [2]


async def test_revisions_are_never_reused_after_deletion(store: SqlStore, db_url: str) -> None:
    for _ in range(3):
        await store.register_task_definition(make_taskdef("web"))
    engine = create_async_engine(db_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM task_definitions WHERE family = 'web'"))
    finally:
        await engine.dispose()
    again = await store.register_task_definition(make_taskdef("web"))
    assert again.revision == 4


async def test_concurrent_registrations_get_distinct_consecutive_revisions(
    store: SqlStore,
) -> None:
    results = await asyncio.gather(
        *(store.register_task_definition(make_taskdef("web")) for _ in range(20))
    )
    assert sorted(td.revision for td in results) == list(range(1, 21))


async def test_concurrent_registrations_from_separate_connections(new_store: Any) -> None:
    """Four store objects (four connections, as four processes would have) race."""
    stores = [await new_store() for _ in range(4)]
    results = await asyncio.gather(
        *(s.register_task_definition(make_taskdef("web")) for s in stores for _ in range(5))
    )
    assert sorted(td.revision for td in results) == list(range(1, 21))
    stored = await stores[0].list_task_definitions(family="web")
    assert [td.revision for td in stored] == list(range(1, 21))
