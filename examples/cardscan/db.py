"""What api.py, worker.py and migrate.py share: configuration from the environment, the
SQLite connection settings and the schema version they expect.

Standard library only, imported by the scripts from their own directory.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import sys

SCHEMA_VERSION = 2
"""The newest schema migrate.py knows; api.py reports unhealthy until the DB has it."""

BUSY_TIMEOUT_MS = 5000
NOW = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
"""SQLite's clock as ISO-8601 UTC with milliseconds: sortable as text, so a lease cutoff is
a plain string comparison."""

STATUSES = ("queued", "working", "done", "failed")


class ConfigError(Exception):
    """A missing or malformed environment variable; the message names it."""


def db_path() -> str:
    path = os.environ.get("CARDSCAN_DB", "").strip()
    if not path:
        raise ConfigError("CARDSCAN_DB is not set: give the path of the SQLite database file")
    return path


def env_number(name: str, default: float, minimum: float = 0) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if value < minimum:
        raise ConfigError(f"{name}={raw!r} must be at least {minimum:g}")
    return value


def connect(path: str) -> sqlite3.Connection:
    """An autocommit connection (transactions are explicit ``BEGIN``s) that waits up to
    ``BUSY_TIMEOUT_MS`` for another writer instead of failing with "database is locked"."""
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def current_version(conn: sqlite3.Connection) -> int:
    """The schema version the DB is at; 0 for a DB that was never migrated."""
    has_table = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    if not has_table:
        return 0
    row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
    return int(row[0])


def setup_logging(component: str) -> logging.Logger:
    """One line per event on stdout (hatoba captures it as the task's log)."""
    logging.basicConfig(
        stream=sys.stdout,
        level=os.environ.get("CARDSCAN_LOG_LEVEL", "INFO").upper(),
        format=f"%(asctime)s {component}[%(process)d] %(levelname)s %(message)s",
    )
    return logging.getLogger(component)
