"""Writing task output to the caller's terminal exactly as the containers wrote it.

Bytes are not decoded or re-encoded: a container's stdout goes to our stdout and its stderr
to our stderr (lines of files it wrote to stdout), newline only where it had one, so
``hatoba run -f job > out.bin`` is faithful.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import IO

from hatoba.client import LogLine


def format_line(
    line: LogLine, *, prefix: bool = False, timestamps: bool = False, task: bytes = b""
) -> bytes:
    """One line as bytes: optional ``timestamp ``, ``task `` (already formatted, e.g. a
    colored short id) and ``container | `` prefixes, the data, and a newline unless the
    stream ended without one (or the record is a fragment of a longer line)."""
    head = b""
    if timestamps:
        ts = datetime.fromtimestamp(line.timestamp_ns / 1e9, UTC)
        head += ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ ").encode()
    head += task
    if prefix:
        head += line.container.encode()
        if line.stream.startswith("file:"):
            head += b"[" + line.stream.encode() + b"]"
        head += b" | "
    elif task:
        head += b"| "
    return head + line.data + (b"\n" if line.eol and not line.partial else b"")


# ANSI foreground colors for task prefixes, in order of first appearance
TASK_COLORS = (36, 33, 35, 32, 34, 31, 96, 93, 95, 92, 94, 91)


class TaskPrefixes:
    """``6e97a1b6 `` per task, colored per task when ``color`` (a terminal)."""

    def __init__(self, width: int, color: bool) -> None:
        self.width = width
        self.color = color
        self._seen: dict[str, bytes] = {}

    def __call__(self, task_id: str) -> bytes:
        found = self._seen.get(task_id)
        if found is None:
            text = task_id[: self.width].encode() + b" "
            if self.color:
                code = TASK_COLORS[len(self._seen) % len(TASK_COLORS)]
                text = b"\x1b[%dm" % code + text + b"\x1b[0m"
            self._seen[task_id] = found = text
        return found


def write_lines(
    lines: Iterable[LogLine],
    *,
    prefix: bool = False,
    timestamps: bool = False,
    as_json: bool = False,
    stdout: IO[bytes] | None = None,
    stderr: IO[bytes] | None = None,
    task_prefix: Callable[[str], bytes] | None = None,
) -> int:
    """Copy ``lines`` to stdout/stderr by stream (``as_json``: NDJSON to stdout).

    Flushes after each line so output is live. Returns the number of lines written.
    """
    out = stdout if stdout is not None else sys.stdout.buffer
    err = stderr if stderr is not None else sys.stderr.buffer
    count = 0
    for line in lines:
        if as_json:
            out.write(json.dumps(line.wire(), ensure_ascii=False).encode() + b"\n")
            out.flush()
        else:
            target = err if line.stream == "stderr" else out
            task = task_prefix(line.task_id) if task_prefix is not None else b""
            target.write(format_line(line, prefix=prefix, timestamps=timestamps, task=task))
            target.flush()
        count += 1
    return count
