"""Log lines as the server streams them (NDJSON), decoded back to the exact bytes written."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from hatoba.client.errors import ApiError


@dataclass(frozen=True)
class LogLine:
    """One line of a container's output.

    ``data`` is the line without its newline; ``eol`` is False when the stream ended without
    one, so writing ``data + b"\\n" if eol`` reproduces the output byte for byte.
    """

    container: str
    stream: str  # "stdout", "stderr" or "file:<name>" (a file the container wrote)
    timestamp_ns: int
    data: bytes
    eol: bool = True
    task_id: str = ""
    partial: bool = False  # a fragment of a longer line (only when asked for raw records)

    @classmethod
    def from_wire(cls, obj: dict[str, Any]) -> LogLine:
        if "messageBase64" in obj:
            data = base64.b64decode(obj["messageBase64"])
        else:
            data = str(obj.get("message", "")).encode("utf-8")
        return cls(
            container=str(obj.get("container", "")),
            stream=str(obj.get("stream", "stdout")),
            timestamp_ns=int(obj.get("timestampNs", 0)),
            data=data,
            eol=bool(obj.get("eol", True)),
            task_id=str(obj.get("taskId", "")),
            partial=bool(obj.get("partial", False)),
        )

    def wire(self) -> dict[str, Any]:
        """The server's NDJSON form (``message`` when UTF-8, else ``messageBase64``)."""
        out: dict[str, Any] = {"timestampNs": self.timestamp_ns}
        if self.task_id:
            out["taskId"] = self.task_id
        out |= {
            "container": self.container,
            "stream": self.stream,
        }
        try:
            out["message"] = self.data.decode("utf-8")
        except UnicodeDecodeError:
            out["messageBase64"] = base64.b64encode(self.data).decode("ascii")
        if not self.eol:
            out["eol"] = False
        if self.partial:
            out["partial"] = True
        return out


def parse_ndjson(lines: Iterable[str]) -> Iterator[LogLine]:
    """Decode NDJSON lines; an ``{"error": ...}`` object mid-stream becomes ``ApiError``."""
    for raw in lines:
        if not raw.strip():
            continue
        obj = json.loads(raw)
        if isinstance(obj, dict) and "error" in obj and "timestampNs" not in obj:
            raise ApiError.from_body(200, obj, "log stream failed")
        yield LogLine.from_wire(obj)
