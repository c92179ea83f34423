"""Running one store operation as one transaction, on either database.

Every store operation is written once, as a plain function of a ``Tx`` (a sync SQLAlchemy
``Connection`` plus the transaction's timestamp); that is the single code path. A runner only
decides where that function runs:

* ``PostgresRunner``: on a pooled asyncpg connection through ``AsyncConnection.run_sync``.
* ``SqliteRunner``: on one dedicated thread that owns one pysqlite connection. aiosqlite hops
  to its thread for every cursor call (cursor, execute, fetch, close), about 80 us each on
  our machines, so a four-statement transaction cost ~2.5 ms; one hop per operation brings a
  create to a few hundred microseconds. The thread's queue also serialises this process's
  transactions, which SQLite would do anyway, and an operation whose caller is cancelled still
  commits or rolls back as a whole.

Every write appends a ``changes`` row through ``Tx.record``; after commit the runner reports
the newest seq and the transaction's changes (with the objects as committed) to ``on_commit``,
so in-process waiters wake at once and need not read back what they were told.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, func, select

from hatoba.model.node import Node
from hatoba.model.service import Service
from hatoba.model.task import Task
from hatoba.model.taskdef import TaskDefinition
from hatoba.store.engine import postgres_engine, sqlite_engine
from hatoba.store.protocol import Change
from hatoba.store.schema import changes

T = TypeVar("T")
OnCommit = Callable[[int, Sequence[Change]], None]

# Arbitrary constants naming hatoba's PostgreSQL advisory locks ("hatb" + a digit).
FEED_LOCK = 0x68617462_01
MIGRATION_LOCK = 0x68617462_02

_INSERT_CHANGE = changes.insert().returning(changes.c.seq)
_LOCK_FEED = select(func.pg_advisory_xact_lock(FEED_LOCK))


class Tx:
    """One open transaction: its connection, its timestamp, and the feed rows it wrote."""

    def __init__(self, conn: Connection, now: datetime, postgres: bool) -> None:
        self.conn = conn
        self.now = now
        self.postgres = postgres
        self.last_seq = 0
        self.changes: list[Change] = []

    def record(
        self, kind: str, key: str, value: Task | TaskDefinition | Node | Service | None = None
    ) -> None:
        """Append to the change feed. On PostgreSQL the first append takes a lock held to
        commit, so seqs become visible in order: otherwise a reader could see seq 6 commit
        before seq 5 and skip 5 for good. (SQLite has one writer; order is free there.)"""
        if self.postgres and not self.last_seq:
            self.conn.execute(_LOCK_FEED)
        params = {"kind": kind, "key": key, "at": self.now}
        self.last_seq = int(self.conn.execute(_INSERT_CHANGE, params).scalar_one())
        self.changes.append(Change(self.last_seq, kind, key, self.now, value))


class PostgresRunner:
    def __init__(self, url: str, clock: Callable[[], datetime], on_commit: OnCommit):
        self.engine = postgres_engine(url)
        self._clock = clock
        self._on_commit = on_commit
        self._inflight: set[asyncio.Task[Any]] = set()

    async def run(self, fn: Callable[[Tx], T], *, write: bool) -> T:
        """Run ``fn`` in a transaction. A cancelled caller does not cancel the database
        call: cancelling asyncpg mid-query leaves the pooled connection busy, and the
        rollback that follows then waits forever. The call finishes (commit or rollback)
        on its own; the caller just stops waiting for it."""
        task = asyncio.ensure_future(self._run(fn))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        return await asyncio.shield(task)

    async def _run(self, fn: Callable[[Tx], T]) -> T:
        def call(conn: Connection) -> tuple[T, Tx]:
            tx = Tx(conn, self._clock(), postgres=True)
            return fn(tx), tx

        async with self.engine.begin() as conn:
            result, tx = await conn.run_sync(call)
        if tx.last_seq:
            self._on_commit(tx.last_seq, tx.changes)
        return result

    async def close(self) -> None:
        if self._inflight:
            await asyncio.wait(self._inflight, timeout=10)
        await self.engine.dispose()


class SqliteRunner:
    def __init__(self, url: str, clock: Callable[[], datetime], on_commit: OnCommit):
        self.engine: Engine
        self.engine, self._begin = sqlite_engine(url)
        self._clock = clock
        self._on_commit = on_commit
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="hatoba-sqlite")
        self._conn: Connection | None = None  # touched only on the executor's thread

    async def run(self, fn: Callable[[Tx], T], *, write: bool) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, loop, fn, write)

    def _call(self, loop: asyncio.AbstractEventLoop, fn: Callable[[Tx], T], write: bool) -> T:
        if self._conn is None:
            self._conn = self.engine.connect()
        conn = self._conn
        self._begin.sql = "BEGIN IMMEDIATE" if write else None
        tx = Tx(conn, self._clock(), postgres=False)
        try:
            with conn.begin():
                result = fn(tx)
        except BaseException:
            if conn.invalidated or conn.in_transaction():
                self._conn = None  # never hand the next call a connection in an unknown state
                conn.close()
            raise
        if tx.last_seq:
            # Published from here, not by the awaiting coroutine, so that the wake-up happens
            # even when that coroutine was cancelled while the commit went through.
            with contextlib.suppress(RuntimeError):  # a closing loop has nobody left to wake
                loop.call_soon_threadsafe(self._on_commit, tx.last_seq, tx.changes)
        return result

    def _close_sync(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self.engine.dispose()

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._close_sync)
        self._executor.shutdown(wait=False)
