"""Writing audit entries off the request path.

An audit write is a store transaction; awaiting it inside every mutating request put a
write (and its contention with the agent's writes) on the run-task hot path. Entries are
queued and written by ``run`` as soon as the previous batch is done — so the window a crash
can lose is one in-flight batch — and ``drain`` writes whatever is queued, which readers of
the audit log call first so they always see their own calls.
"""

from __future__ import annotations

import asyncio
import logging

from hatoba.model.access import AuditEntry
from hatoba.store.protocol import Store

log = logging.getLogger("hatoba.audit")


class AuditWriter:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._pending: list[AuditEntry] = []
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()

    def add(self, entry: AuditEntry) -> None:
        self._pending.append(entry)
        self._wake.set()

    async def drain(self) -> None:
        """Write everything queued so far (failures are logged, never raised)."""
        async with self._lock:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    await self._store.append_audits(batch)
                except Exception:
                    log.exception(
                        "audit write failed; lost: %s",
                        "; ".join(
                            f"{e.method} {e.path} by {e.principal} -> {e.status}" for e in batch
                        ),
                    )

    async def run(self) -> None:
        """Write batches until cancelled; then write what is left."""
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                await self.drain()
        finally:
            await asyncio.shield(self.drain())
