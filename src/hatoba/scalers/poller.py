"""``Poller``: reads one source every ``interval`` seconds, each read bounded by ``timeout``.

It keeps the latest good reading, the number of failed reads in a row and the last failure's
message. A failed read never replaces the last good reading with a guess: the controller sees
``latest()`` (possibly old: look at ``.at``) and ``error()``, and keeps the current count.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from hatoba.model.clock import Clock, SystemClock
from hatoba.scalers.base import MetricError, MetricReading, MetricSource

log = logging.getLogger("hatoba.scalers")


class Poller:
    def __init__(
        self,
        source: MetricSource,
        *,
        interval: float = 1.0,
        timeout: float = 5.0,
        clock: Clock | None = None,
        on_update: Callable[[Poller], None] | None = None,
    ) -> None:
        if interval <= 0 or timeout <= 0:
            raise ValueError("interval and timeout must be positive")
        self.source = source
        self.interval = interval
        self.timeout = timeout
        self.on_update = on_update
        self._clock: Clock = clock or SystemClock()
        self._latest: MetricReading | None = None
        self._error: str | None = None
        self._last_error: str | None = None
        self._errors = 0
        self._polls = 0
        self._last_poll_at: datetime | None = None

    def latest(self) -> MetricReading | None:
        """The last good reading (kept through failures), or None before the first one."""
        return self._latest

    def error(self) -> str | None:
        """Why the most recent read failed; None when it succeeded (or none ran yet)."""
        return self._error

    @property
    def consecutive_errors(self) -> int:
        """Failed reads since the last good one."""
        return self._errors

    @property
    def last_error(self) -> str | None:
        """The most recent failure's message, even after reads succeed again."""
        return self._last_error

    @property
    def polls(self) -> int:
        return self._polls

    @property
    def last_poll_at(self) -> datetime | None:
        return self._last_poll_at

    @property
    def healthy(self) -> bool:
        """A good reading exists and the most recent read succeeded."""
        return self._latest is not None and self._error is None

    async def poll_once(self) -> MetricReading | None:
        """One read; returns the reading, or None after recording the failure."""
        reading: MetricReading | None = None
        message: str | None = None
        try:
            async with asyncio.timeout(self.timeout):
                reading = await self.source.read()
        except TimeoutError:
            message = f"{self.source.kind}: timeout after {self.timeout:g}s"
        except MetricError as exc:
            message = f"{self.source.kind}: {exc}"
        except Exception as exc:  # a bug in a source must not stop the polling
            log.exception("metric source %s raised", self.source.kind)
            message = f"{self.source.kind}: unexpected {type(exc).__name__}: {exc}"
        self._polls += 1
        self._last_poll_at = self._clock.now()
        if reading is not None:
            self._latest, self._error, self._errors = reading, None, 0
        else:
            self._error = self._last_error = message
            self._errors += 1
        self._notify()
        return reading

    async def run(self) -> None:
        """Poll until cancelled; never raises anything else."""
        while True:
            started = self._clock.now()
            await self.poll_once()
            spent = (self._clock.now() - started).total_seconds()
            await self._clock.sleep(max(0.0, self.interval - spent))

    async def close(self) -> None:
        """Close the source (call after cancelling ``run``)."""
        try:
            await self.source.close()
        except Exception:
            log.exception("closing metric source %s", self.source.kind)

    def _notify(self) -> None:
        if self.on_update is None:
            return
        try:
            self.on_update(self)
        except Exception:
            log.exception("metric poller on_update callback raised")
