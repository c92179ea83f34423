"""SQL sources on SQLite, PostgreSQL and MariaDB: a queue table, counted; answers that are
not one number; read-only; statement timeouts; reconnecting after the server drops us."""

from __future__ import annotations

import sqlite3
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiomysql  # type: ignore[import-untyped]
import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy.engine import make_url

from hatoba.scalers import MetricError
from tests.scalers.conftest import Opener

Exec = Callable[[str], Awaitable[None]]
SLOW = {
    "sqlite": (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c"
    ),
    "postgresql": "SELECT count(*) FROM pg_sleep(3)",
    "mysql": (
        "SELECT count(*) FROM information_schema.columns a, information_schema.columns b, "
        "information_schema.columns c"
    ),
}


class Db:
    """One backend: its URL and a way to run setup SQL outside the source."""

    def __init__(self, kind: str, url: str, execute: Exec) -> None:
        self.kind, self.url, self.execute = kind, url, execute


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Db]:
    path = tmp_path / "queue.db"

    async def execute(sql: str) -> None:
        with sqlite3.connect(path) as conn:
            conn.executescript(sql)
        conn.close()

    yield Db("sqlite", f"sqlite:///{path}", execute)


@pytest.fixture
async def pg_db(pg_url: str, name: str) -> AsyncIterator[Db]:
    async def execute(sql: str) -> None:
        conn = await asyncpg.connect(pg_url, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    yield Db("postgresql", pg_url, execute)
    await execute(f"DROP TABLE IF EXISTS {name}")


@pytest.fixture
async def mysql_db(mysql_url: str, name: str) -> AsyncIterator[Db]:
    url = make_url(mysql_url)

    async def execute(sql: str) -> None:
        conn = await aiomysql.connect(
            host=url.host,
            port=url.port or 3306,
            user=url.username,
            password=url.password or "",
            db=url.database,
            autocommit=True,
            connect_timeout=5,
        )
        try:
            async with conn.cursor() as cur:
                for statement in filter(str.strip, sql.split(";")):
                    await cur.execute(statement)
        finally:
            conn.close()

    yield Db("mysql", mysql_url, execute)
    with warnings.catch_warnings():  # "Unknown table" when the test made none
        warnings.simplefilter("ignore")
        await execute(f"DROP TABLE IF EXISTS {name}")


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def db(request: pytest.FixtureRequest) -> Db:
    fixture = {"sqlite": "sqlite_db", "postgresql": "pg_db", "mysql": "mysql_db"}[request.param]
    value: Db = request.getfixturevalue(fixture)
    return value


async def make_queue(db: Db, table: str, pending: int, done: int) -> None:
    rows = [f"('pending', {i})" for i in range(pending)] + [f"('done', {i})" for i in range(done)]
    identity = {
        "sqlite": "",
        "postgresql": " GENERATED ALWAYS AS IDENTITY",
        "mysql": " AUTO_INCREMENT",
    }[db.kind]
    await db.execute(
        f"CREATE TABLE {table} (id INTEGER PRIMARY KEY{identity}, "
        "state VARCHAR(20) NOT NULL, weight INTEGER NOT NULL);"
        f"INSERT INTO {table} (state, weight) VALUES {', '.join(rows)};"
    )


def sql(db: Db, query: str, timeout: float = 5) -> dict[str, Any]:
    return {"sql": {"url": db.url, "query": query}, "timeout": timeout}


async def test_counts_a_queue_table(db: Db, name: str, opened: Opener) -> None:
    await make_queue(db, name, pending=7, done=3)
    source = opened(sql(db, f"SELECT count(*) FROM {name} WHERE state = 'pending'"))
    reading = await source.read()
    assert reading.value == 7
    await db.execute(f"UPDATE {name} SET state = 'done' WHERE weight < 5")
    assert (await source.read()).value == 2
    total = opened(sql(db, f"SELECT sum(weight) / 2.0 FROM {name}"))  # a Decimal on some
    assert (await total.read()).value == (sum(range(7)) + sum(range(3))) / 2


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("SELECT id FROM {t} WHERE 1 = 0", "query returned no rows"),
        ("SELECT id FROM {t}", "query returned more than one row"),
        ("SELECT count(*), max(id) FROM {t}", "query returned 2 columns"),
        ("SELECT state FROM {t} WHERE weight = 0", "column 'state' is str 'pending', not a number"),
        ("SELECT max(id) FROM {t} WHERE 1 = 0", "query returned NULL in column"),
        ("SELEC count(*) FROM {t}", "query failed: "),
        ("SELECT count(*) FROM {t}_missing", "query failed: "),
    ],
)
async def test_answers_that_are_not_one_number(db, name, opened: Opener, query, problem):
    await make_queue(db, name, pending=2, done=0)
    source = opened(sql(db, query.format(t=name)))
    with pytest.raises(MetricError, match=problem):
        await source.read()
    fine = opened(sql(db, f"SELECT count(*) FROM {name}"))
    assert (await fine.read()).value == 2


async def test_queries_cannot_write(db: Db, name: str, opened: Opener) -> None:
    await make_queue(db, name, pending=3, done=0)
    plain = opened(sql(db, f"DELETE FROM {name}"))
    with pytest.raises(MetricError):
        await plain.read()
    source = opened(sql(db, f"DELETE FROM {name} RETURNING id"))
    with pytest.raises(MetricError, match=r"query failed: .*(read.only|READ ONLY|readonly)"):
        await source.read()
    if db.kind == "postgresql":  # a write hidden in a SELECT is refused too
        sneaky = opened(
            sql(db, f"WITH d AS (DELETE FROM {name} RETURNING 1) SELECT count(*) FROM d")
        )
        with pytest.raises(MetricError, match=r"read-only transaction"):
            await sneaky.read()
    count = opened(sql(db, f"SELECT count(*) FROM {name}"))
    assert (await count.read()).value == 3


async def test_statement_timeout(db: Db, name: str, opened: Opener) -> None:
    await make_queue(db, name, pending=1, done=0)
    source = opened(sql(db, SLOW[db.kind], timeout=0.3))
    with pytest.raises(
        MetricError, match=r"query failed: .*(timeout|interrupted|max_statement_time)"
    ):
        await source.read()
    quick = opened(sql(db, "SELECT 1"))
    assert (await quick.read()).value == 1


async def test_sqlite_missing_file(tmp_path: Path, opened: Opener) -> None:
    source = opened({"sql": {"url": f"sqlite:///{tmp_path}/nope.db", "query": "SELECT 1"}})
    with pytest.raises(
        MetricError, match=r"cannot connect to sqlite .*nope.db: .*no database file"
    ):
        await source.read()
    assert not (tmp_path / "nope.db").exists()


async def test_postgres_reconnects_after_the_server_drops_it(pg_db: Db, opened: Opener):
    source = opened(sql(pg_db, "SELECT pg_backend_pid()"))
    pid = int((await source.read()).value)
    await pg_db.execute(f"SELECT pg_terminate_backend({pid})")
    with pytest.raises(MetricError, match=r"sql read from postgresql 127.0.0.1:5432 failed"):
        await source.read()
    new_pid = int((await source.read()).value)
    assert new_pid != pid
    assert int((await source.read()).value) == new_pid  # reused across polls


async def test_mysql_reconnects_after_the_server_drops_it(mysql_db: Db, opened: Opener):
    source = opened(sql(mysql_db, "SELECT CONNECTION_ID()"))
    conn_id = int((await source.read()).value)
    await mysql_db.execute(f"KILL {conn_id}")
    with pytest.raises(MetricError):
        await source.read()
    new_id = int((await source.read()).value)
    assert new_id != conn_id
    assert int((await source.read()).value) == new_id


@pytest.mark.parametrize(
    "url", ["postgresql://postgres@127.0.0.1:1/test", "mysql://root@127.0.0.1:1/test"]
)
async def test_unreachable_database(url: str, opened: Opener) -> None:
    source = opened({"sql": {"url": url, "query": "SELECT 1"}})
    with pytest.raises(MetricError, match=r"cannot connect to (postgresql|mysql) 127\.0\.0\.1:1"):
        await source.read()
