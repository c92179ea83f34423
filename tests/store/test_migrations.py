"""Numbered migrations: recorded, idempotent, safe to run from two processes at once."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import pytest
from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from hatoba.store import migrations, schema
from hatoba.store.sql import SqlStore
from tests.store.conftest import T0


async def _query(url: str, sql: str) -> list[Any]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(text(sql))).all())
    finally:
        await engine.dispose()


def test_migrations_are_numbered_in_order() -> None:
    found = migrations.available()
    assert [m.version for m in found] == list(range(1, len(found) + 1))
    assert found[0].name == "0001_initial"


async def test_migrate_twice_is_idempotent_and_recorded(store: SqlStore, db_url: str) -> None:
    await store.migrate()
    rows = await _query(db_url, "SELECT version, applied_at FROM schema_migrations")
    assert sorted(r[0] for r in rows) == [m.version for m in migrations.available()]
    assert all(r[1] is not None for r in rows)


async def test_migrated_schema_matches_schema_module(store: SqlStore, db_url: str) -> None:
    """Queries use ``schema.py``; the migrations must have built exactly that."""

    def describe(conn: Connection) -> dict[str, Any]:
        insp = inspect(conn)
        return {
            name: (
                sorted(c["name"] for c in insp.get_columns(name)),
                sorted(i["name"] or "" for i in insp.get_indexes(name)),
            )
            for name in insp.get_table_names()
        }

    engine = create_async_engine(db_url)
    try:
        async with engine.connect() as conn:
            actual = await conn.run_sync(describe)
    finally:
        await engine.dispose()
    expected = {
        t.name: (sorted(c.name for c in t.columns), sorted(i.name or "" for i in t.indexes))
        for t in schema.metadata.sorted_tables
    }
    assert actual == expected


async def test_concurrent_migrate_on_empty_database(db_url: str) -> None:
    stores = [SqlStore(db_url) for _ in range(3)]
    try:
        await asyncio.gather(*(s.migrate() for s in stores))
    finally:
        for s in stores:
            await s.close()
    rows = await _query(db_url, "SELECT version FROM schema_migrations")
    assert sorted(r[0] for r in rows) == [m.version for m in migrations.available()]


async def test_migrate_from_two_processes_at_once(db_url: str) -> None:
    code = (
        "import asyncio, sys\n"
        "from hatoba.store.sql import SqlStore\n"
        "async def main():\n"
        "    s = SqlStore(sys.argv[1])\n"
        "    await s.migrate()\n"
        "    await s.close()\n"
        "asyncio.run(main())\n"
    )
    env = os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [
        await asyncio.create_subprocess_exec(sys.executable, "-c", code, db_url, env=env)
        for _ in range(2)
    ]
    assert [await p.wait() for p in procs] == [0, 0]
    rows = await _query(db_url, "SELECT version FROM schema_migrations")
    assert sorted(r[0] for r in rows) == [m.version for m in migrations.available()]


async def test_refuses_a_schema_newer_than_the_code(store: SqlStore, db_url: str) -> None:
    engine = create_async_engine(db_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                schema.schema_migrations.insert().values(version=9999, applied_at=T0)
            )
    finally:
        await engine.dispose()
    with pytest.raises(RuntimeError, match="newer"):
        await store.migrate()
