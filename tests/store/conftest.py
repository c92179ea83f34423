"""Store fixtures: every store test runs on SQLite (a file in tmp_path) and on PostgreSQL.

PostgreSQL is the one at 127.0.0.1:5432 (user postgres); the session gets its own database,
``hatoba_test_<hex>``, dropped at the end. Each test starts from an empty schema. When
PostgreSQL is unreachable the tests fail, unless HATOBA_TEST_SKIP_PG=1.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hatoba.model.node import Node
from hatoba.model.task import Task
from hatoba.model.taskdef import TaskDefinition
from hatoba.store.sql import SqlStore
from tests.conftest import PG_HOST, _admin

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def make_taskdef(family: str = "web", **extra: Any) -> TaskDefinition:
    body = {"family": family, "containerDefinitions": [{"name": "app", "command": ["true"]}]}
    return TaskDefinition.model_validate(body | extra)


def make_task(task_id: str, family: str = "web", minutes: int = 0, **fields: Any) -> Task:
    """A task created ``minutes`` after T0, so ordering by creation time is deterministic."""
    fields.setdefault("created_at", T0 + timedelta(minutes=minutes))
    return Task(task_id=task_id, task_definition_arn=f"{family}:1", **fields)


def make_node(node_id: str, **fields: Any) -> Node:
    return Node(
        node_id=node_id,
        hostname=f"{node_id}.example",
        cpu=2048,
        memory=4096,
        registered_at=T0,
        heartbeat_at=T0,
        **fields,
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database (nothing migrated yet)."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'hatoba.db'}"
    name = request.getfixturevalue("pg_database")
    asyncio.run(_admin("DROP SCHEMA public CASCADE; CREATE SCHEMA public", database=name))
    return f"postgresql+asyncpg://postgres@{PG_HOST}:5432/{name}"


@pytest.fixture
async def open_stores(db_url: str) -> AsyncIterator[list[SqlStore]]:
    """Store objects opened by ``new_store``; closed after the test."""
    stores: list[SqlStore] = []
    yield stores
    for s in stores:
        await s.close()


@pytest.fixture
def new_store(db_url: str, open_stores: list[SqlStore]) -> Any:
    """Open another migrated store on the same database: a stand-in for another process."""

    async def new(poll_interval: float = 0.05, **kw: Any) -> SqlStore:
        s = SqlStore(db_url, poll_interval=poll_interval, **kw)
        open_stores.append(s)
        await s.migrate()
        return s

    return new


@pytest.fixture
async def store(new_store: Any) -> SqlStore:
    s: SqlStore = await new_store()
    return s
