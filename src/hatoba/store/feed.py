"""In-process wake-ups for the change feed.

Writers publish the seq they committed; waiters block on an ``asyncio.Event`` that is swapped
for a fresh one on every publish, so a waiter that took its event before looking at the
database cannot miss a publish that happens while it looks (it waits on the old event, which
is already set).
"""

from __future__ import annotations

import asyncio


class ChangeNotifier:
    def __init__(self) -> None:
        self._seq = 0
        self._event = asyncio.Event()

    @property
    def seq(self) -> int:
        """The newest seq known to this process (committed here or seen by a poll)."""
        return self._seq

    def snapshot(self) -> asyncio.Event:
        """The event the next publish will set; take it before reading the database."""
        return self._event

    def publish(self, seq: int) -> None:
        if seq <= self._seq:
            return
        self._seq = seq
        event, self._event = self._event, asyncio.Event()
        event.set()

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
