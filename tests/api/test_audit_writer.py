"""The audit writer: queued entries reach the store, readers see their own calls, a
cancelled writer writes what is left, a failing store never raises into requests."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from hatoba.controllers.audit_writer import AuditWriter
from hatoba.model.access import AuditEntry

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def entry(path: str) -> AuditEntry:
    return AuditEntry(at=T0, principal="root", method="POST", path=path, status=200)


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.batches: list[list[str]] = []
        self.fail = fail

    async def append_audits(self, entries: Any) -> None:
        await asyncio.sleep(0)
        if self.fail:
            raise OSError("disk full")
        self.batches.append([e.path for e in entries])


async def test_drain_writes_everything_queued() -> None:
    store = Recorder()
    writer = AuditWriter(store)  # type: ignore[arg-type]
    writer.add(entry("/a"))
    writer.add(entry("/b"))
    await writer.drain()
    assert store.batches == [["/a", "/b"]]


async def test_running_writer_batches_and_flushes_on_cancel() -> None:
    store = Recorder()
    writer = AuditWriter(store)  # type: ignore[arg-type]
    task = asyncio.create_task(writer.run())
    writer.add(entry("/1"))
    await asyncio.sleep(0.01)
    writer.add(entry("/2"))
    writer.add(entry("/3"))
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert [p for batch in store.batches for p in batch] == ["/1", "/2", "/3"]


async def test_store_failure_is_logged_not_raised(caplog: Any) -> None:
    writer = AuditWriter(Recorder(fail=True))  # type: ignore[arg-type]
    writer.add(entry("/x"))
    await writer.drain()
    assert "audit write failed; lost: POST /x by root -> 200" in caplog.text
