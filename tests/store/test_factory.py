"""open_store: URL handling, the data directory, and SQLite connection settings."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from hatoba.model.layout import DataLayout
from hatoba.store.engine import sqlite_engine
from hatoba.store.factory import async_url, open_store
from tests.store.conftest import make_task


def test_urls(tmp_path: Path) -> None:
    layout = DataLayout(tmp_path)
    assert async_url(None, layout) == f"sqlite+aiosqlite:///{tmp_path / 'hatoba.db'}"
    assert async_url("postgres://u:p@h:5/db", layout) == "postgresql+asyncpg://u:p@h:5/db"
    assert async_url("postgresql://h/db", layout) == "postgresql+asyncpg://h/db"
    assert async_url("postgresql+asyncpg://h/db", layout) == "postgresql+asyncpg://h/db"
    assert async_url("sqlite:////x/y.db", layout) == "sqlite+aiosqlite:////x/y.db"
    with pytest.raises(ValueError, match="mysql"):
        async_url("mysql://h/db", layout)


async def test_default_store_lives_in_a_private_data_dir(tmp_path: Path) -> None:
    layout = DataLayout(tmp_path / "home")
    store = await open_store(None, layout)
    try:
        await store.create_task(make_task("t1"))
    finally:
        await store.close()
    assert stat.S_IMODE(layout.home.stat().st_mode) == 0o700
    with sqlite3.connect(layout.database) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT task_id FROM tasks").fetchall() == [("t1",)]


def test_sqlite_connections_get_the_pragmas(tmp_path: Path) -> None:
    engine, _ = sqlite_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    try:
        with engine.connect() as conn:

            def pragma(name: str) -> object:
                return conn.exec_driver_sql(f"PRAGMA {name}").scalar()

            assert pragma("journal_mode") == "wal"
            assert pragma("synchronous") == 1  # NORMAL
            assert pragma("busy_timeout") == 5000
            assert pragma("foreign_keys") == 1
    finally:
        engine.dispose()
