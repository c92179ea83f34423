"""Writing task output to the caller's terminal exactly as the containers wrote it.

Bytes are not decoded or re-encoded: a container's stdout goes to our stdout and its stderr
to our stderr, newline only where it had one, so ``hatoba run -f job > out.bin`` is faithful.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import IO

from hatoba.client import LogLine


def format_line(line: LogLine, *, prefix: bool = False, timestamps: bool = False) -> bytes:
    """One line as bytes: optional ``timestamp `` and ``container | `` prefixes, the data,
    and a newline unless the stream ended without one."""
    head = b""
    if timestamps:
        ts = datetime.fromtimestamp(line.timestamp_ns / 1e9, UTC)
        head += ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ ").encode()
    if prefix:
        head += line.container.encode() + b" | "
    return head + line.data + (b"\n" if line.eol else b"")


def write_lines(
    lines: Iterable[LogLine],
    *,
    prefix: bool = False,
    timestamps: bool = False,
    as_json: bool = False,
    stdout: IO[bytes] | None = None,
    stderr: IO[bytes] | None = None,
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
            target.write(format_line(line, prefix=prefix, timestamps=timestamps))
            target.flush()
        count += 1
    return count
