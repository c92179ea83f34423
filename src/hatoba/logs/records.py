"""The framed log-record format written by the task shim and read by the control plane.

Each record is a 16-byte little-endian header followed by the line's bytes (without its
newline)::

    int64  timestamp, nanoseconds since the Unix epoch (when the shim read the line)
    uint32 length of the payload in bytes
    uint8  stream: 1 = stdout, 2 = stderr, 3 = a file the container wrote (tailed by the
           agent into a record file of its own, see ``hatoba.logs.tail``)
    uint8  flags:  PARTIAL (1) - the line continues in the next record of the same stream
                   NO_EOL  (2) - the stream ended without a trailing newline
    uint16 reserved, zero

Bytes are stored as written, so non-UTF-8 output survives. A line longer than the shim's
maximum is cut into PARTIAL records that readers join back (``join_partials``). A trailing
record that is only partly on disk is treated as not yet written.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from typing import NamedTuple

HEADER = struct.Struct("<qIBBH")
HEADER_SIZE = HEADER.size  # 16
STDOUT = 1
STDERR = 2
FILE = 3
PARTIAL = 1
NO_EOL = 2
STREAM_NAMES = {STDOUT: "stdout", STDERR: "stderr", FILE: "file"}


class LogRecord(NamedTuple):
    """One record (a NamedTuple: the reader makes hundreds of thousands a second)."""

    timestamp_ns: int
    stream: int
    data: bytes
    flags: int = 0

    @property
    def partial(self) -> bool:
        return bool(self.flags & PARTIAL)

    @property
    def stream_name(self) -> str:
        return STREAM_NAMES.get(self.stream, "stdout")

    def encode(self) -> bytes:
        return (
            HEADER.pack(self.timestamp_ns, len(self.data), self.stream, self.flags, 0) + self.data
        )


def decode(buffer: bytes | memoryview, offset: int = 0) -> tuple[list[LogRecord], int]:
    """Decode every complete record in ``buffer`` from ``offset``.

    Returns the records and the offset just past the last complete one.
    """
    data = buffer if isinstance(buffer, bytes) else bytes(buffer)
    records: list[LogRecord] = []
    append, unpack = records.append, HEADER.unpack_from
    end = len(data)
    while end - offset >= HEADER_SIZE:
        ts, length, stream, flags, _ = unpack(data, offset)
        stop = offset + HEADER_SIZE + length
        if stop > end:
            break
        append(LogRecord(ts, stream, data[offset + HEADER_SIZE : stop], flags))
        offset = stop
    return records, offset


class PartialJoiner:
    """Joins PARTIAL fragments back into whole lines, per stream, keeping order.

    Feed records as they arrive (``feed``); call ``flush`` at the end of the log to get an
    unterminated tail, if any.
    """

    def __init__(self) -> None:
        self._pending: dict[int, list[LogRecord]] = {}

    def feed(self, records: Iterable[LogRecord]) -> Iterator[LogRecord]:
        for rec in records:
            if rec.partial:
                self._pending.setdefault(rec.stream, []).append(rec)
                continue
            parts = self._pending.pop(rec.stream, None)
            if parts:
                yield LogRecord(
                    parts[0].timestamp_ns,
                    rec.stream,
                    b"".join(p.data for p in parts) + rec.data,
                    rec.flags,
                )
            else:
                yield rec

    def flush(self) -> Iterator[LogRecord]:
        for parts in self._pending.values():
            yield LogRecord(
                parts[0].timestamp_ns, parts[0].stream, b"".join(p.data for p in parts), NO_EOL
            )
        self._pending.clear()


def join_partials(records: Iterable[LogRecord]) -> Iterator[LogRecord]:
    """Join a complete log's PARTIAL fragments back into whole lines."""
    joiner = PartialJoiner()
    yield from joiner.feed(records)
    yield from joiner.flush()
