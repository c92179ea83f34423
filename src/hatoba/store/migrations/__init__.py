"""Numbered schema migrations, applied in order and recorded in ``schema_migrations``.

Each module here is named ``NNNN_description.py`` and defines ``upgrade(conn)``, run on a sync
``Connection`` inside the caller's transaction. The caller holds a lock that serialises
concurrent ``migrate()`` calls (a PostgreSQL advisory lock, or SQLite's write lock), so two
processes starting at once apply each migration exactly once; and since DDL is transactional
on both databases, a failed migration leaves nothing half-applied.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select

from hatoba.store.schema import schema_migrations

_NAME = re.compile(r"^(\d{4})_\w+$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    upgrade: Callable[[Connection], None]


def available() -> list[Migration]:
    """Every migration module in this package, in version order."""
    found: list[Migration] = []
    for info in pkgutil.iter_modules(__path__):
        m = _NAME.match(info.name)
        if m is None:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        found.append(Migration(int(m.group(1)), info.name, module.upgrade))
    found.sort(key=lambda mig: mig.version)
    versions = [mig.version for mig in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration numbers: {versions}")
    return found


def apply_pending(conn: Connection, now: datetime) -> list[int]:
    """Apply the migrations not yet recorded; returns the versions applied."""
    schema_migrations.create(conn, checkfirst=True)
    done = set(conn.execute(select(schema_migrations.c.version)).scalars())
    known = available()
    newest_known = known[-1].version if known else 0
    if done and max(done) > newest_known:
        raise RuntimeError(
            f"database schema is at version {max(done)}, newer than this hatoba knows "
            f"({newest_known}); upgrade hatoba"
        )
    applied: list[int] = []
    for mig in known:
        if mig.version in done:
            continue
        mig.upgrade(conn)
        conn.execute(schema_migrations.insert().values(version=mig.version, applied_at=now))
        applied.append(mig.version)
    return applied
