"""In-process wake-ups for the change feed, and the recent changes this process committed.

Writers publish the seq they committed; waiters block on an ``asyncio.Event`` that is swapped
for a fresh one on every publish, so a waiter that took its event before looking at the
database cannot miss a publish that happens while it looks (it waits on the old event, which
is already set).

Each publish also hands over the ``Change`` rows the transaction wrote, with the object as
committed. While every seq after a reader's position is one this process committed (always,
with one control plane on SQLite), ``since`` answers ``changes_since`` from memory, objects
included, so feed readers need neither the feed read nor a re-read of what changed. A seq
this process did not commit (another process's write, seen by a poll) is a gap: the reader
then goes to the database, as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from hatoba.store.protocol import Change

KEEP = 4096  # recent changes kept in memory; a reader further behind reads the database


class ChangeNotifier:
    def __init__(self, keep: int = KEEP) -> None:
        self._seq = 0
        self._event = asyncio.Event()
        self._recent: dict[int, Change] = {}
        self._keep = keep

    @property
    def seq(self) -> int:
        """The newest seq known to this process (committed here or seen by a poll)."""
        return self._seq

    def snapshot(self) -> asyncio.Event:
        """The event the next publish will set; take it before reading the database."""
        return self._event

    def publish(self, seq: int, changes: Sequence[Change] = ()) -> None:
        for change in changes:
            self._recent[change.seq] = change
        while len(self._recent) > self._keep:
            del self._recent[next(iter(self._recent))]
        if seq <= self._seq:
            return
        self._seq = seq
        event, self._event = self._event, asyncio.Event()
        event.set()

    def since(self, seq: int, limit: int) -> list[Change] | None:
        """The changes after ``seq`` up to the newest known seq (at most ``limit``), if this
        process committed every one of them; None when one is missing (read the database)."""
        if seq >= self._seq:
            return None  # nothing known past it: only the database can tell
        out = []
        for s in range(seq + 1, min(self._seq, seq + limit) + 1):
            change = self._recent.get(s)
            if change is None:
                return None
            out.append(change)
        return out

    @staticmethod
    async def wait(event: asyncio.Event, seconds: float) -> bool:
        """Wait for ``event`` (from ``snapshot``) up to ``seconds``; True if it fired.

        ``asyncio.timeout``, not ``wait_for``: on Python 3.11 ``wait_for`` can turn the
        caller's own cancellation into a TimeoutError when it lands as the timeout fires,
        which swallowed the shutdown of loops waiting here."""
        try:
            async with asyncio.timeout(seconds):
                await event.wait()
        except TimeoutError:
            return False
        return True
