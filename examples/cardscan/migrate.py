"""Create or upgrade the cardscan schema in the SQLite file named by ``CARDSCAN_DB``.

Idempotent: each numbered migration runs once, in its own ``BEGIN IMMEDIATE`` transaction,
and is recorded in ``schema_version``; running again (or twice at once) changes nothing.
Exit codes: 0 migrated or already current, 1 database error, 2 configuration error.

    CARDSCAN_DB=/tmp/cardscan.db python3 migrate.py
"""

from __future__ import annotations

import sqlite3
import sys

from db import NOW, SCHEMA_VERSION, ConfigError, connect, current_version, db_path, setup_logging

MIGRATIONS: dict[int, str] = {
    1: f"""
        CREATE TABLE cards (
            id           INTEGER PRIMARY KEY AUTOINCREMENT,
            submitted_at TEXT    NOT NULL DEFAULT ({NOW}),
            status       TEXT    NOT NULL DEFAULT 'queued'
                         CHECK (status IN ('queued', 'working', 'done', 'failed')),
            name         TEXT    NOT NULL,     -- the submitter's label for the card
            payload      TEXT    NOT NULL,     -- the card's text (what OCR would read)
            result       TEXT,                 -- JSON: the parsed fields, or {{"error": ...}}
            worker       TEXT,                 -- who holds (or last held) the card
            attempts     INTEGER NOT NULL DEFAULT 0,
            updated_at   TEXT    NOT NULL DEFAULT ({NOW})
        );
    """,
    2: """
        CREATE INDEX cards_by_status ON cards (status, id);
        CREATE INDEX cards_by_lease ON cards (status, updated_at);
    """,
}
assert max(MIGRATIONS) == SCHEMA_VERSION, "db.SCHEMA_VERSION must name the last migration"


def migrate(conn: sqlite3.Connection) -> list[int]:
    """Apply every missing migration; return the versions applied (empty when current)."""
    conn.execute("PRAGMA journal_mode = WAL")  # readers never block the writer
    conn.execute(
        f"""CREATE TABLE IF NOT EXISTS schema_version (
                version    INTEGER PRIMARY KEY,
                applied_at TEXT NOT NULL DEFAULT ({NOW})
            )"""
    )
    found = current_version(conn)
    if found > SCHEMA_VERSION:
        raise RuntimeError(
            f"the database is at schema version {found}, newer than this migrate.py knows "
            f"({SCHEMA_VERSION}): run the newer release's migrate.py"
        )
    applied: list[int] = []
    for version in sorted(MIGRATIONS):
        conn.execute("BEGIN IMMEDIATE")
        try:
            # re-read inside the write lock: a concurrent migrate may have just applied it
            if current_version(conn) >= version:
                conn.execute("ROLLBACK")
                continue
            for statement in _statements(MIGRATIONS[version]):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        applied.append(version)
    return applied


def _statements(script: str) -> list[str]:
    """Split a migration into statements (``executescript`` would commit our transaction)."""
    return [s.strip() for s in script.split(";") if s.strip()]


def main() -> int:
    log = setup_logging("migrate")
    try:
        path = db_path()
    except ConfigError as e:
        log.error("%s", e)
        return 2
    try:
        conn = connect(path)
        try:
            applied = migrate(conn)
        finally:
            conn.close()
    except (sqlite3.Error, RuntimeError) as e:
        hint = " (does its directory exist and is it writable?)" if "open" in str(e) else ""
        log.error("cannot migrate %s: %s%s", path, e, hint)
        return 1
    if applied:
        log.info("%s migrated to schema version %d (applied %s)", path, SCHEMA_VERSION, applied)
    else:
        log.info("%s is already at schema version %d", path, SCHEMA_VERSION)
    return 0


if __name__ == "__main__":
    sys.exit(main())
