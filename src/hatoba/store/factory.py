"""Open the configured store: the URL a user types, turned into the async driver's URL."""

from __future__ import annotations

from hatoba.model.layout import DataLayout
from hatoba.store.sql import SqlStore

_POSTGRES_SCHEMES = ("postgresql://", "postgres://", "postgresql+asyncpg://")


def async_url(url: str | None, layout: DataLayout) -> str:
    """``None`` means SQLite in the data directory; PostgreSQL URLs get the asyncpg driver,
    so users can paste the ``postgres://`` URL their provider gives them."""
    if url is None:
        return f"sqlite+aiosqlite:///{layout.database}"
    for scheme in _POSTGRES_SCHEMES:
        if url.startswith(scheme):
            return "postgresql+asyncpg://" + url[len(scheme) :]
    for scheme in ("sqlite://", "sqlite+aiosqlite://"):
        if url.startswith(scheme):
            return "sqlite+aiosqlite://" + url[len(scheme) :]
    raise ValueError(f"unsupported database URL {url.split('://', 1)[0]!r}: use sqlite or postgres")


async def open_store(
    url: str | None, layout: DataLayout, *, poll_interval: float = 0.5
) -> SqlStore:
    """A migrated, ready store. Creates the data directory (mode 0700) for the SQLite file."""
    if url is None and not layout.home.exists():
        layout.home.mkdir(parents=True, exist_ok=True)
        layout.home.chmod(0o700)
    store = SqlStore(async_url(url, layout), poll_interval=poll_interval)
    try:
        await store.migrate()
    except BaseException:
        await store.close()
        raise
    return store
