"""Engines for the two databases, with the connection settings each one needs.

SQLite: every new connection gets WAL (readers never block the writer), synchronous=NORMAL
(durable at checkpoints, no fsync per commit: the hot path budget is well under a millisecond),
a 5 s busy timeout (other processes' writes wait instead of failing) and foreign keys. The
driver's implicit transactions are turned off and ``BEGIN`` is emitted here instead, so that
write transactions say ``BEGIN IMMEDIATE``: taking the write lock up front is what makes
read-then-write transactions (revision counters, compare-and-set) safe across processes, where
a deferred transaction would fail with SQLITE_BUSY when it upgrades its lock. Reads emit no
BEGIN at all: each read is one statement, which SQLite already runs atomically, and skipping
BEGIN/COMMIT saves two driver calls per read.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

SQLITE_PRAGMAS = ("PRAGMA busy_timeout=5000", "PRAGMA synchronous=NORMAL", "PRAGMA foreign_keys=ON")
BUSY_TIMEOUT = 5.0


class SqliteBegin:
    """What the next SQLite transaction emits as its BEGIN (None: stay in autocommit).
    Set by the store's single SQLite thread before each transaction."""

    def __init__(self) -> None:
        self.sql: str | None = None


def backend(url: str) -> str:
    return make_url(url).get_backend_name()


def sqlite_engine(url: str) -> tuple[Engine, SqliteBegin]:
    """A sync pysqlite engine (whatever driver the URL names); see ``runner.SqliteRunner``
    for why the store drives SQLite synchronously from one thread."""
    sync_url: URL = make_url(url).set(drivername="sqlite+pysqlite")
    engine = create_sync_engine(sync_url)
    begin = SqliteBegin()

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        for pragma in SQLITE_PRAGMAS:
            dbapi_connection.execute(pragma)
        _enable_wal(dbapi_connection)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if begin.sql is not None:  # straight to the driver: a statement's worth of overhead less
            conn.connection.driver_connection.execute(begin.sql)  # type: ignore[union-attr]

    return engine, begin


def _enable_wal(dbapi_connection: Any) -> None:
    """Switch a new database to WAL (a setting stored in the file, so usually already on).

    The switch needs an exclusive lock and SQLite may refuse it at once, without consulting
    the busy timeout, while another connection opens the same new file; so retry for as long
    as the busy timeout would have waited. Runs on the store's SQLite thread, not the loop.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT
    while True:
        try:
            mode = dbapi_connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
            continue
        if mode.lower() == "wal" or time.monotonic() > deadline:
            return
        time.sleep(0.01)


def postgres_engine(url: str) -> AsyncEngine:
    sa_url = make_url(url)
    if sa_url.drivername != "postgresql+asyncpg":
        sa_url = sa_url.set(drivername="postgresql+asyncpg")
    return create_async_engine(sa_url, pool_size=10, max_overflow=20)
