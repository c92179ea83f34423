"""A SQL query that returns one number: the "database table as a queue" workers.

Each read runs the query in a READ ONLY transaction that is always rolled back, under a
statement timeout (the source's ``timeout``): PostgreSQL via asyncpg (``BEGIN READ ONLY``,
``SET LOCAL statement_timeout``), MySQL/MariaDB via aiomysql (``START TRANSACTION READ
ONLY``, ``max_statement_time``/``max_execution_time``), SQLite via aiosqlite (the file opened
``mode=ro``, a progress handler that interrupts a query past its deadline).

The answer must be exactly one row with exactly one numeric column; anything else is a
``ResultError`` that names the problem (the connection is kept). A NULL is an error too:
``SELECT max(...)`` of an empty table is NULL, and guessing 0 is the caller's choice
(``COALESCE(max(...), 0)``).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import aiomysql  # type: ignore[import-untyped]
import aiosqlite
import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url

from hatoba.scalers.base import Connected, MetricReading, ResultError, as_number, redact
from hatoba.scalers.spec import url_scheme

# pymysql error numbers from 2000 up are the client's own (lost connection, cannot
# connect, ...): the connection is unusable. Below that the server rejected the query.
_CLIENT_ERRORS = 2000


def one_number(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> float:
    """The single numeric value of a one-row, one-column answer, else ``ResultError``."""
    if len(columns) != 1:
        names = ", ".join(columns) or "none"
        raise ResultError(
            f"query returned {len(columns)} columns ({names}); it must return exactly one "
            "numeric column"
        )
    if not rows:
        raise ResultError("query returned no rows; it must return exactly one row")
    if len(rows) > 1:
        raise ResultError("query returned more than one row; it must return exactly one row")
    value = rows[0][0]
    if value is None:
        raise ResultError(
            f"query returned NULL in column {columns[0]!r}; use COALESCE(..., 0) if NULL means zero"
        )
    return as_number(value, f"column {columns[0]!r}")


class _SqlSource(Connected[Any]):
    kind = "sql"

    def __init__(self, url: str, query: str, *, timeout: float = 5.0, **kw: Any) -> None:
        self._url = make_url(url)
        host = self._url.host or "localhost"
        port = f":{self._url.port}" if self._url.port else ""
        super().__init__(f"{url_scheme(url)} {host}{port}", **kw)
        self.query = query
        self.timeout = timeout

    def _result(self, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> MetricReading:
        value = one_number(columns, rows)
        return self.reading(value)


class PostgresSource(_SqlSource):
    async def _connect(self) -> Any:
        dsn = self._url.set(drivername="postgresql").render_as_string(hide_password=False)
        return await asyncpg.connect(dsn, timeout=self.timeout, statement_cache_size=0)

    async def _disconnect(self, client: Any) -> None:
        await client.close(timeout=1)

    async def _measure(self, client: Any) -> MetricReading:
        transaction = client.transaction(readonly=True)
        await transaction.start()
        try:
            await client.execute(f"SET LOCAL statement_timeout = {int(self.timeout * 1000)}")
            try:
                statement = await client.prepare(self.query)
                columns = [a.name for a in statement.get_attributes()]
                rows = await _first_two(statement) if columns else []
            except asyncpg.PostgresError as exc:
                raise ResultError(f"query failed: {exc}") from exc
        finally:
            await transaction.rollback()
        return self._result(columns, rows)


async def _first_two(statement: Any) -> list[Any]:
    cursor = await statement.cursor()
    return list(await cursor.fetch(2))


class MySqlSource(_SqlSource):
    async def _connect(self) -> Any:
        url = self._url
        conn = await aiomysql.connect(
            host=url.host or "127.0.0.1",
            port=url.port or 3306,
            user=url.username or "root",
            password=url.password or "",
            db=url.database,
            connect_timeout=self.timeout,
            autocommit=True,
        )
        try:
            async with conn.cursor() as cur:
                await cur.execute("SELECT VERSION()")
                (version,) = await cur.fetchone()
                if "mariadb" in str(version).lower():
                    await cur.execute(f"SET SESSION max_statement_time = {self.timeout:.3f}")
                else:  # MySQL: milliseconds, applies to SELECT
                    await cur.execute(
                        f"SET SESSION max_execution_time = {int(self.timeout * 1000)}"
                    )
        except BaseException:
            conn.close()
            raise
        return conn

    async def _disconnect(self, client: Any) -> None:
        client.close()

    async def _measure(self, client: Any) -> MetricReading:
        async with client.cursor() as cur:
            await cur.execute("START TRANSACTION READ ONLY")
            try:
                try:
                    await cur.execute(self.query)
                except aiomysql.MySQLError as exc:
                    errno = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
                    if errno >= _CLIENT_ERRORS:
                        raise
                    raise ResultError(f"query failed: {_mysql_message(exc)}") from exc
                columns = [d[0] for d in cur.description or ()]
                rows = list(await cur.fetchmany(2)) if columns else []
            finally:
                await cur.execute("ROLLBACK")
        return self._result(columns, rows)


def _mysql_message(exc: BaseException) -> str:
    if len(exc.args) >= 2:
        return f"({exc.args[0]}) {exc.args[1]}"
    return str(exc)


class SqliteSource(_SqlSource):
    def __init__(self, url: str, query: str, **kw: Any) -> None:
        super().__init__(url, query, **kw)
        self.path = self._url.database or ""
        self.target = f"sqlite {self.path}"
        self._deadline = 0.0

    async def _connect(self) -> Any:
        if not await asyncio.to_thread(os.path.isfile, self.path):
            # checked here, not left to SQLite: mode=ro never creates the file, and
            # aiosqlite's failed connect leaves its thread answering after the loop is gone
            raise FileNotFoundError(f"no database file {self.path}")
        uri = f"file:{quote(self.path)}?mode=ro"
        conn = await aiosqlite.connect(uri, uri=True, timeout=self.timeout, isolation_level=None)
        try:
            await conn.set_progress_handler(self._past_deadline, 1000)
        except BaseException:
            await conn.close()
            raise
        return conn

    def _past_deadline(self) -> int:  # called on SQLite's thread; non-zero interrupts
        return 1 if time.monotonic() > self._deadline else 0

    async def _disconnect(self, client: Any) -> None:
        await client.close()

    async def _measure(self, client: Any) -> MetricReading:
        self._deadline = time.monotonic() + self.timeout
        await client.execute("BEGIN")
        try:
            try:
                async with client.execute(self.query) as cur:
                    columns = [d[0] for d in cur.description or ()]
                    rows = list(await cur.fetchmany(2)) if columns else []
            except sqlite3.Error as exc:
                if "interrupted" in str(exc):
                    raise ResultError(f"query failed: timeout after {self.timeout:g}s") from exc
                raise ResultError(f"query failed: {exc}") from exc
        finally:
            self._deadline = time.monotonic() + self.timeout
            await client.execute("ROLLBACK")
        return self._result(columns, rows)


def sql_source(url: str, query: str, **kw: Any) -> _SqlSource:
    scheme = url_scheme(url)
    if scheme == "sqlite":
        return SqliteSource(url, query, **kw)
    if scheme in ("postgresql", "postgres"):
        return PostgresSource(url.replace("postgres://", "postgresql://", 1), query, **kw)
    if scheme in ("mysql", "mariadb"):
        return MySqlSource(url, query, **kw)
    raise ValueError(f"no SQL source for {redact(url)}")
