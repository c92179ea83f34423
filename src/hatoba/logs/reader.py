"""Reading and following a task's logs from the record files its shims write.

Following ends only after the task is STOPPED *and* everything on disk has been read: the
shim writes a container's exit status only after its log is fsynced, so a STOPPED task's
files are complete and the last line is never lost.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from hatoba.logs.records import LogRecord, PartialJoiner, decode

READ_CHUNK = 4 * 1024 * 1024


@dataclass(frozen=True)
class TaskLogLine:
    container: str
    record: LogRecord


class ContainerLogCursor:
    """Incremental reader of one container's record file."""

    def __init__(self, container: str, path: Path) -> None:
        self.container = container
        self.path = path
        self.offset = 0
        self._joiner = PartialJoiner()

    def read_available(self) -> list[TaskLogLine]:
        """Every complete record after the cursor (a record still being written waits)."""
        out: list[TaskLogLine] = []
        try:
            f = open(self.path, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            return out
        with f:
            f.seek(self.offset)
            pending = b""
            while data := f.read(READ_CHUNK):
                buffer = pending + data
                records, used = decode(buffer)
                self.offset += used
                pending = buffer[used:]
                out.extend(TaskLogLine(self.container, r) for r in self._joiner.feed(records))
        return out

    def has_new_data(self) -> bool:
        try:
            return os.path.getsize(self.path) > self.offset
        except FileNotFoundError:
            return False

    def finish(self) -> list[TaskLogLine]:
        return [TaskLogLine(self.container, r) for r in self._joiner.flush()]


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
    until ``finished()`` is true and a final read found nothing new.
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
