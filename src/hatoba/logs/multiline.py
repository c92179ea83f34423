"""Multiline joining at read time, like Fluent Bit's multiline parser with a start pattern.

A line matching the start pattern opens a record; the lines after it that do not match join
it (``b"\\n"``-separated) while each comes within ``timeout`` of the one before, so a stack
trace is one record. A line that does not match and has nothing open (or came too late) is
a record by itself, so a pattern that never matches changes nothing. Per stream: stdout and
stderr never mix.

Why at read time and not in the shim: the stored log stays exactly what the process wrote
(``--raw`` shows it; a wrong pattern is fixed by editing the task definition, with nothing
lost), the C shim needs no regex engine (POSIX ERE has no ``\\d``, and a slow pattern in the
shim would stall the workload on a full pipe), and tailed files go through the same code.
The timeout is judged on the records' own timestamps, so reading a log later groups it
exactly as following it live did.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from hatoba.logs.records import NO_EOL, LogRecord

DEFAULT_TIMEOUT = 1.0
MAX_GROUP_BYTES = 4 * 1024 * 1024  # a runaway "trace" is cut here rather than held forever


@dataclass(frozen=True)
class MultilineRule:
    start: re.Pattern[str]
    timeout_ns: int = int(DEFAULT_TIMEOUT * 1e9)
    max_bytes: int = MAX_GROUP_BYTES

    @classmethod
    def parse(cls, pattern: str, timeout: float = DEFAULT_TIMEOUT) -> MultilineRule:
        return cls(re.compile(pattern), int(timeout * 1e9))

    def starts(self, data: bytes) -> bool:
        return self.start.search(data.decode("utf-8", "surrogateescape")) is not None


@dataclass
class Piece:
    """A record on its way through the joiners, with the file offset of its first byte."""

    record: LogRecord
    start: int


@dataclass
class _Group:
    first: Piece
    parts: list[bytes] = field(default_factory=list)
    size: int = 0
    last_ts: int = 0
    flags: int = 0

    def piece(self) -> Piece:
        rec = self.first.record
        data = b"\n".join(self.parts)
        return Piece(LogRecord(rec.timestamp_ns, rec.stream, data, self.flags), self.first.start)


class MultilineJoiner:
    def __init__(self, rule: MultilineRule) -> None:
        self.rule = rule
        self._open: dict[int, _Group] = {}

    def pending_starts(self) -> Iterator[int]:
        return (g.first.start for g in self._open.values())

    def feed(self, piece: Piece) -> Iterator[Piece]:
        rec = piece.record
        group = self._open.get(rec.stream)
        start = self.rule.starts(rec.data)
        joins = (
            group is not None
            and not start
            and rec.timestamp_ns - group.last_ts <= self.rule.timeout_ns
            and group.size + 1 + len(rec.data) <= self.rule.max_bytes
            and not group.flags & NO_EOL
        )
        if group is not None and joins:
            group.parts.append(rec.data)
            group.size += 1 + len(rec.data)
            group.last_ts = rec.timestamp_ns
            group.flags = rec.flags
            return
        if group is not None:
            del self._open[rec.stream]
            yield group.piece()
        if start and not rec.flags & NO_EOL:
            self._open[rec.stream] = _Group(
                piece, [rec.data], len(rec.data), rec.timestamp_ns, rec.flags
            )
        else:
            yield piece

    def flush_idle(self, now_ns: int) -> Iterator[Piece]:
        """Groups nothing can join any more: their last line is older than the timeout."""
        for stream, group in list(self._open.items()):
            if now_ns - group.last_ts > self.rule.timeout_ns:
                del self._open[stream]
                yield group.piece()

    def flush(self) -> Iterator[Piece]:
        groups = sorted(self._open.values(), key=lambda g: g.first.start)
        self._open.clear()
        for group in groups:
            yield group.piece()
