"""Shared fixtures: a throw-away PostgreSQL database for the session (the server at
127.0.0.1:5432; HATOBA_TEST_SKIP_PG=1 skips PostgreSQL tests where there is none)."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest

# Tests and the processes they start (servers, CLIs) use this checkout's code, whatever
# copy of hatoba happens to be installed.
_ROOT = Path(__file__).resolve().parent.parent
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(_ROOT / "src"), str(_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
)

PG_HOST = "127.0.0.1"
PG_ADMIN_DB = "test"


async def _admin(sql: str, database: str = PG_ADMIN_DB) -> None:
    conn = await asyncpg.connect(host=PG_HOST, user="postgres", database=database, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    if os.environ.get("HATOBA_TEST_SKIP_PG") == "1":
        pytest.skip("HATOBA_TEST_SKIP_PG=1")
    name = f"hatoba_test_{secrets.token_hex(6)}"
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError, TimeoutError) as e:
        pytest.fail(f"PostgreSQL at {PG_HOST}:5432 unreachable ({e}); set HATOBA_TEST_SKIP_PG=1")
    yield name
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def pg_url(name: str) -> str:
    return f"postgresql://postgres@{PG_HOST}:5432/{name}"
