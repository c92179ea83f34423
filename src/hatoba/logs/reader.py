"""Reading and following a task's logs from the record files its shims (and the agent's
file tailers) write.

Following ends only after the task is STOPPED *and* everything on disk has been read: the
shim writes a container's exit status only after its log is fsynced, and the agent drains
and fsyncs tailed files before it records STOPPED, so a STOPPED task's files are complete
and the last line is never lost.

``RecordCursor`` is the one incremental reader: PARTIAL fragments joined back (unless
``raw``), optional multiline joining, and for every record it returns the *resume offset*:
the byte offset to start from to get every record not returned yet (see ``source.py``).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from hatoba.logs.multiline import MultilineJoiner, MultilineRule, Piece
from hatoba.logs.records import HEADER, HEADER_SIZE, NO_EOL, PARTIAL, LogRecord, decode

READ_CHUNK = 4 * 1024 * 1024


@dataclass(frozen=True)
class ReadOptions:
    raw: bool = False  # records as stored: PARTIAL fragments not joined, no multiline
    multiline: MultilineRule | None = None


class TaskLogLine(NamedTuple):
    container: str
    record: LogRecord
    label: str | None = None  # the stream's name when not the record's own ("file:app.log")
    task_id: str = ""

    @property
    def stream(self) -> str:
        return self.label or self.record.stream_name


class RecordCursor:
    """Incremental reader of one record file, from a byte offset."""

    def __init__(self, path: Path, offset: int = 0, options: ReadOptions | None = None) -> None:
        self.path = path
        self.offset = offset  # bytes consumed (every record before it was decoded)
        self.options = options or ReadOptions()
        self._partials: dict[int, tuple[int, list[LogRecord]]] = {}  # stream -> start, parts
        rule = None if self.options.raw else self.options.multiline
        self._multiline = MultilineJoiner(rule) if rule is not None else None

    def resume_offset(self) -> int:
        """Where to start again to get every record not returned yet."""
        starts = [start for start, _ in self._partials.values()]
        if self._multiline is not None:
            starts.extend(self._multiline.pending_starts())
        return min(starts, default=self.offset)

    def has_new_data(self) -> bool:
        try:
            return os.path.getsize(self.path) > self.offset
        except FileNotFoundError:
            return False

    def read(self, max_bytes: int = READ_CHUNK) -> list[tuple[LogRecord, int]]:
        """Records from up to ``max_bytes`` after the cursor (more if one record is bigger),
        each with its resume offset. A record still being written waits."""
        data = _read_records(self.path, self.offset, max_bytes)
        out: list[tuple[LogRecord, int]] = []
        if not data:
            return out
        records, _used = decode(data)
        pos = self.offset
        plain = self.options.raw or self._multiline is None
        for rec in records:
            start = pos
            pos += HEADER_SIZE + len(rec.data)
            self.offset = pos
            if plain and not rec.flags & PARTIAL and not self._partials:
                out.append((rec, pos))  # the usual case, kept fast
                continue
            for piece in self._feed(rec, start):
                out.append((piece.record, self.resume_offset()))
        return out

    def read_all(self) -> list[tuple[LogRecord, int]]:
        out: list[tuple[LogRecord, int]] = []
        while True:
            before = self.offset
            out.extend(self.read())
            if self.offset == before:
                return out

    def _feed(self, rec: LogRecord, start: int) -> Iterator[Piece]:
        if self.options.raw:
            yield Piece(rec, start)
            return
        pending = self._partials.get(rec.stream)
        if rec.partial:
            if pending is None:
                self._partials[rec.stream] = (start, [rec])
            else:
                pending[1].append(rec)
            return
        if pending is not None:
            del self._partials[rec.stream]
            first_start, parts = pending
            parts.append(rec)
            data = b"".join(p.data for p in parts)
            rec, start = LogRecord(parts[0].timestamp_ns, rec.stream, data, rec.flags), first_start
        yield from self._multiline_feed(Piece(rec, start))

    def _multiline_feed(self, piece: Piece) -> Iterator[Piece]:
        if self._multiline is None:
            yield piece
        else:
            yield from self._multiline.feed(piece)

    def flush_idle(self, now_ns: int | None = None) -> list[tuple[LogRecord, int]]:
        """Multiline groups that nothing can join any more (following a live log)."""
        if self._multiline is None:
            return []
        now = time.time_ns() if now_ns is None else now_ns
        return [(p.record, self.resume_offset()) for p in list(self._multiline.flush_idle(now))]

    def finish(self) -> list[tuple[LogRecord, int]]:
        """End of the log: an unterminated PARTIAL tail and open multiline groups."""
        pieces: list[Piece] = []
        for start, parts in sorted(self._partials.values(), key=lambda p: p[0]):
            data = b"".join(p.data for p in parts)
            rec = LogRecord(parts[0].timestamp_ns, parts[0].stream, data, NO_EOL)
            pieces.extend(self._multiline_feed(Piece(rec, start)))
        self._partials.clear()
        if self._multiline is not None:
            pieces.extend(self._multiline.flush())
        return [(p.record, self.offset) for p in pieces]


def _read_records(path: Path, offset: int, max_bytes: int) -> bytes:
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return b""
    with f:
        f.seek(offset)
        data = f.read(max_bytes)
        if len(data) >= HEADER_SIZE:  # one record bigger than max_bytes: read all of it
            need = HEADER_SIZE + HEADER.unpack_from(data)[1]
            if need > len(data):
                data += f.read(need - len(data))
        return data


class ContainerLogCursor:
    """A ``RecordCursor`` for one of a container's record files, yielding ``TaskLogLine``."""

    def __init__(
        self,
        container: str,
        path: Path,
        *,
        label: str | None = None,
        options: ReadOptions | None = None,
        task_id: str = "",
        offset: int = 0,
    ) -> None:
        self.container = container
        self.label = label
        self.task_id = task_id
        self.cursor = RecordCursor(path, offset, options)

    @property
    def path(self) -> Path:
        return self.cursor.path

    @property
    def offset(self) -> int:
        return self.cursor.offset

    def _lines(self, batch: list[tuple[LogRecord, int]]) -> list[TaskLogLine]:
        return [TaskLogLine(self.container, r, self.label, self.task_id) for r, _ in batch]

    def read_some(self, max_bytes: int = READ_CHUNK) -> list[TaskLogLine]:
        return self._lines(self.cursor.read(max_bytes))

    def read_available(self) -> list[TaskLogLine]:
        """Every complete record after the cursor (a record still being written waits)."""
        return self._lines(self.cursor.read_all())

    def has_new_data(self) -> bool:
        return self.cursor.has_new_data()

    def flush_idle(self) -> list[TaskLogLine]:
        return self._lines(self.cursor.flush_idle())

    def finish(self) -> list[TaskLogLine]:
        return self._lines(self.cursor.finish())


async def task_log_lines(
    files: Sequence[tuple[str, Path]],
    *,
    follow: bool,
    finished: Callable[[], Awaitable[bool]],
    since_ns: int | None = None,
    poll_interval: float = 0.05,
) -> AsyncIterator[list[TaskLogLine]]:
    """Yield batches of whole lines from every container, each batch ordered by time.

    Without ``follow`` it reads what is there and stops. With ``follow`` it keeps reading
    until ``finished()`` is true and a final read found nothing new. (``hatoba.logs.query``
    is the general form: several tasks, tailed files, filters.)
    """
    cursors = [ContainerLogCursor(name, path) for name, path in files]
    while True:
        done = follow and await finished()
        batch: list[TaskLogLine] = []
        for cursor in cursors:
            if cursor.has_new_data():
                batch.extend(await asyncio.to_thread(cursor.read_available))
        if not follow or done:
            for cursor in cursors:
                batch.extend(cursor.finish())
        if since_ns is not None:
            batch = [b for b in batch if b.record.timestamp_ns >= since_ns]
        if batch:
            batch.sort(key=lambda line: line.record.timestamp_ns)
            yield batch
        if not follow or done:
            return
        if not batch:
            await asyncio.sleep(poll_interval)
