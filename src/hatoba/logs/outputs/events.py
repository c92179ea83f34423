"""What outputs send: a line with where it came from, as a record (dict) per wire format.

Every record has ``log`` (the line, without its newline), ``stream`` (stdout|stderr|file),
``task_id``, ``container``, ``family``, ``revision``, ``node``; for a service's task
``service``, for a tailed file ``file`` (its name); ``eol: false`` marks a last line that
had no newline. Bytes are never lost: msgpack carries a non-UTF-8 line as ``bin``; JSON carries it
as ``log`` with the bad bytes escaped (``\\xff``) plus ``log_base64``, the exact bytes.
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from hatoba.logs.records import NO_EOL, LogRecord


@dataclass(frozen=True)
class SourceMeta:
    """One container of one task: a log source."""

    task_id: str
    container: str
    family: str
    revision: str = ""
    service: str | None = None
    node: str = ""
    image: str | None = None
    label: str | None = None  # a tailed file's stream, "file:NAME"; None for stdout/stderr

    @property
    def key(self) -> str:
        base = f"{self.task_id}/{self.container}"
        return f"{base}/{self.label}" if self.label else base

    def template_values(self) -> dict[str, str]:
        return {
            "family": self.family,
            "revision": self.revision,
            "container": self.container,
            "task_id": self.task_id,
            "task_id_short": self.task_id[:12],
            "service": self.service or "",
            "node": self.node,
            "image": self.image or "",
        }

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SourceMeta:
        fields: dict[str, Any] = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**fields)


@dataclass(frozen=True)
class LogEvent:
    source: SourceMeta
    record: LogRecord


def _common(event: LogEvent) -> dict[str, Any]:
    src, rec = event.source, event.record
    out: dict[str, Any] = {
        "stream": rec.stream_name,
        "task_id": src.task_id,
        "container": src.container,
        "family": src.family,
        "revision": src.revision,
        "node": src.node,
    }
    if src.service:
        out["service"] = src.service
    if src.label:
        out["file"] = src.label.removeprefix("file:")
    if rec.flags & NO_EOL:
        out["eol"] = False
    return out


def forward_record(event: LogEvent) -> dict[str, Any]:
    """The record for msgpack: ``log`` is a str when the line is UTF-8, else bytes (bin)."""
    data = event.record.data
    try:
        log: str | bytes = data.decode("utf-8")
    except UnicodeDecodeError:
        log = data
    return {"log": log, **_common(event)}


def rfc3339(timestamp_ns: int) -> str:
    seconds, nanos = divmod(timestamp_ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{nanos:09d}Z"


def json_record(event: LogEvent) -> dict[str, Any]:
    data = event.record.data
    out: dict[str, Any] = {"time": rfc3339(event.record.timestamp_ns)}
    try:
        out["log"] = data.decode("utf-8")
    except UnicodeDecodeError:
        out["log"] = data.decode("utf-8", "backslashreplace")
        out["log_base64"] = base64.b64encode(data).decode("ascii")
    out.update(_common(event))
    out["timestamp_ns"] = event.record.timestamp_ns
    return out


def json_line(event: LogEvent) -> bytes:
    return json.dumps(json_record(event), ensure_ascii=False).encode() + b"\n"
