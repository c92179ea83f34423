"""Helpers for log tests: writing record files by hand, as the shim would."""

from __future__ import annotations

from pathlib import Path

from hatoba.logs.records import LogRecord


def write_records(path: Path, records: list[LogRecord]) -> list[int]:
    """Append ``records``; returns the offset where each one starts."""
    path.parent.mkdir(parents=True, exist_ok=True)
    starts = []
    with path.open("ab") as f:
        for rec in records:
            starts.append(f.tell())
            f.write(rec.encode())
    return starts


def rec(ts: int, data: bytes, stream: int = 1, flags: int = 0) -> LogRecord:
    return LogRecord(ts, stream, data, flags)
