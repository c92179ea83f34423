"""One output's delivery loop: read the next chunk from the tasks' logs, send it, and when the
output confirms it, move the offsets past it and save them.

Each source is read by a ``RecordCursor`` kept between chunks (PARTIAL fragments and
multiline groups joined, as ``hatoba logs`` shows them); a chunk's offsets are the cursors'
resume offsets of its last lines.

One chunk is in flight at a time, so each source reaches the receiver in order. A chunk
that fails is sent again, the same chunk, after a back-off (the output's own ``retry_after``
when it has one, as forward has for its nodes); meanwhile the backlog waits in the task logs
and, once over the buffer limit, loses its oldest lines (``OutputBuffer.plan_drop``), which
are counted in ``hatoba_log_records_dropped_total`` and reported through ``on_drop``.

``stop`` makes the loop deliver what it can and return at the first chunk that fails (or when
nothing is left); the caller bounds that with its flush grace.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from hatoba.logs.buffer import OutputBuffer, SourceState
from hatoba.logs.outputs.base import Batch, Output, OutputRejected, OutputUnavailable
from hatoba.logs.outputs.events import LogEvent, SourceMeta
from hatoba.logs.outputs.metrics import OutputMetrics
from hatoba.logs.reader import RecordCursor
from hatoba.logs.records import LogRecord
from hatoba.logs.source import FILE_STREAM_PREFIX
from hatoba.logs.tail import STATE_FILE as TAIL_STATE_FILE

log = logging.getLogger("hatoba.logs.outputs")
LIMIT_CHECK_INTERVAL = 1.0


@dataclass(frozen=True)
class Chunk:
    batch: Batch
    starts: dict[str, int]
    ends: dict[str, int]


@dataclass(frozen=True)
class DropNotice:
    output: str
    reason: str  # "buffer_full" | "rejected"
    counts: list[tuple[SourceMeta, int]]
    detail: str

    @property
    def total(self) -> int:
        return sum(n for _, n in self.counts)


OnDrop = Callable[[DropNotice], Awaitable[None]]


@dataclass
class _Reader:
    """A source's cursor and the lines it read that no chunk took yet."""

    cursor: RecordCursor
    ahead: deque[tuple[LogRecord, int]] = field(default_factory=deque)
    ended: bool = False  # finished and read to the end (``finish`` done)

    @property
    def exhausted(self) -> bool:
        return self.ended and not self.ahead


@dataclass(frozen=True)
class WorkerSettings:
    chunk_records: int = 1000
    chunk_bytes: int = 1024 * 1024
    retry_min: float = 1.0
    retry_max: float = 30.0
    poll_interval: float = 0.2


class OutputWorker:
    def __init__(
        self,
        output: Output,
        buffer: OutputBuffer,
        metrics: OutputMetrics,
        settings: WorkerSettings = WorkerSettings(),
        *,
        on_drop: OnDrop | None = None,
    ) -> None:
        self.output = output
        self.name = output.name
        self.buffer = buffer
        self.metrics = metrics
        self.settings = settings
        self.on_drop = on_drop
        self.failing = False
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._rr = 0
        self._pending: Chunk | None = None
        self._readers: dict[str, _Reader] = {}

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Deliver what can be delivered now, then return from ``run``."""
        self._stop.set()
        self._wake.set()

    async def run(self) -> None:
        try:
            await self._loop()
        finally:
            await self.output.close()

    async def _loop(self) -> None:
        failures = 0
        next_check = 0.0
        while True:
            if time.monotonic() >= next_check:
                await self._enforce_limit()
                next_check = time.monotonic() + LIMIT_CHECK_INTERVAL
            chunk = self._pending or await self._build()
            if chunk is None:
                if self._retire():
                    await self.buffer.save()
                if self._stop.is_set():
                    return
                await self._wait(self._wake, self.settings.poll_interval)
                continue
            self._pending = chunk
            delivered = len(chunk.batch.events)
            try:
                if chunk.batch.events:
                    await self.output.send(chunk.batch)
            except OutputUnavailable as exc:
                failures += 1
                self.metrics.failures.labels(self.name).inc()
                if not self.failing:
                    log.warning("log output %s is failing: %s", self.name, exc)
                self.failing = True
                if self._stop.is_set():
                    return  # the rest stays owed (offsets saved) for the next start
                delay = exc.retry_after
                if delay is None:
                    delay = self.settings.retry_min * 2.0 ** min(failures - 1, 16)
                await self._wait(self._stop, min(max(delay, 0.01), self.settings.retry_max))
                next_check = 0.0  # a down output's backlog may have passed the limit
                continue
            except OutputRejected as exc:
                delivered = 0
                await self._report("rejected", self._counts(chunk), str(exc))
            if self.failing:
                log.warning("log output %s delivers again", self.name)
            failures, self.failing = 0, False
            self.metrics.forwarded.labels(self.name).inc(delivered)
            self._pending = None
            self.buffer.commit(chunk.ends)
            self._retire()
            await self.buffer.save()

    async def _wait(self, event: asyncio.Event, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)
        if event is self._wake:
            event.clear()

    def _retire(self) -> bool:
        """Finished sources read to their end and delivered leave the buffer."""
        gone = [k for k, r in self._readers.items() if r.exhausted]
        for key in gone:
            del self._readers[key]
        self.buffer.retire(gone)
        return bool(gone)

    def _reset(self, keys: list[str]) -> None:
        """Read these sources again from their saved offsets."""
        for key in keys:
            self._readers.pop(key, None)

    async def _build(self) -> Chunk | None:
        sources = list(self.buffer.sources.values())
        if not sources:
            return None
        self._rr = (self._rr + 1) % len(sources)
        sources = sources[self._rr :] + sources[: self._rr]
        for s in sources:
            if s.meta.key not in self._readers:
                self._readers[s.meta.key] = _Reader(s.cursor())
        readers = [(s, self._readers[s.meta.key]) for s in sources]
        return await asyncio.to_thread(self._collect, readers)

    def _collect(self, readers: list[tuple[SourceState, _Reader]]) -> Chunk | None:
        max_records, max_bytes = self.settings.chunk_records, self.settings.chunk_bytes
        events: list[LogEvent] = []
        starts: dict[str, int] = {}
        ends: dict[str, int] = {}
        size = 0
        for state, reader in readers:
            if size >= max_bytes or len(events) >= max_records:
                break
            if not reader.ahead:
                _fill(state, reader, max_bytes - size)
            key = state.meta.key
            while reader.ahead and (not events or len(events) < max_records):
                record, resume = reader.ahead[0]
                if events and size + len(record.data) > max_bytes:
                    break
                reader.ahead.popleft()
                events.append(LogEvent(state.meta, record))
                size += len(record.data)
                starts.setdefault(key, state.offset)
                ends[key] = max(ends.get(key, state.offset), resume)
        if not ends:
            return None
        ranges = [(k, starts[k], ends[k]) for k in ends]
        return Chunk(Batch(events, Batch.make_id(self.name, ranges)), starts, ends)

    def _counts(self, chunk: Chunk) -> list[tuple[SourceMeta, int]]:
        counts: dict[SourceMeta, int] = {}
        for e in chunk.batch.events:
            counts[e.source] = counts.get(e.source, 0) + 1
        return list(counts.items())

    async def _enforce_limit(self) -> None:
        backlog = await asyncio.to_thread(self.buffer.backlog)
        owed = sum(backlog.values())
        self.metrics.buffer_bytes.labels(self.name).set(owed)
        if owed <= self.buffer.limit_bytes:
            return
        plan = await asyncio.to_thread(self.buffer.plan_drop)
        if not plan.offsets:
            return
        pending = self._pending
        if pending is not None and any(k in plan.offsets for k in pending.starts):
            # part of it was dropped: its sources are read again from the new offsets
            self._pending = None
            self._reset(list(pending.starts))
        self._reset(list(plan.offsets))
        self.buffer.commit(plan.offsets)
        await self.buffer.save()
        self.metrics.buffer_bytes.labels(self.name).set(owed - plan.freed)
        counts = [
            (self.buffer.sources[k].meta, n)
            for k, n in plan.dropped.items()
            if n and k in self.buffer.sources
        ]
        detail = f"its buffer limit ({self.buffer.limit_bytes} bytes) was exceeded"
        await self._report("buffer_full", counts, detail)

    async def _report(self, reason: str, counts: list[tuple[SourceMeta, int]], detail: str) -> None:
        notice = DropNotice(self.name, reason, counts, detail)
        self.metrics.dropped.labels(self.name, reason).inc(notice.total)
        log.warning(
            "log output %s dropped %d records (%s): %s", self.name, notice.total, reason, detail
        )
        if self.on_drop is not None:
            try:
                await self.on_drop(notice)
            except Exception:
                log.exception("reporting dropped records of %s failed", self.name)


def tail_durable_size(path: str, label: str) -> int | None:
    """How much of a tailed file's record file its tailer has fsynced and accounted for in
    its state: a restart of the tailer truncates what lies past it and writes it again, so
    a forwarder reads no further. None: no state, nothing will be truncated."""
    try:
        data = json.loads((Path(path).parent / TAIL_STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    entry = data.get("sources", {}).get(label.removeprefix(FILE_STREAM_PREFIX))
    return int(entry["records"]) if isinstance(entry, dict) else 0


def _fill(state: SourceState, reader: _Reader, budget: int) -> None:
    """Read the source's next lines into ``reader.ahead`` (blocking)."""
    if reader.ended:
        return
    cursor = reader.cursor
    before = cursor.offset
    budget = max(budget, 64 * 1024)
    readable = cursor.has_new_data()
    if readable and state.meta.label and not state.finished:
        durable = tail_durable_size(state.path, state.meta.label)
        if durable is not None:
            readable = durable > before
            budget = min(budget, durable - before)
    got = cursor.read(budget) if readable else []
    if not got and cursor.offset == before:  # nothing more on disk for now
        if state.finished:
            got = cursor.finish()
            reader.ended = True
        else:
            got = cursor.flush_idle()
    reader.ahead.extend(got)
