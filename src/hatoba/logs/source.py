"""Where a container's records live, and ``follow_records``: the interface for forwarders.

Each container has one record file per source, all in the format of ``records.py``::

    tasks/<task>/<container>/stdio.log          stdout (1) + stderr (2), written by the shim
    tasks/<task>/<container>/files/<name>.log   a tailed file (3), written by the agent
    tasks/<task>/<container>/files/.tail-state.json   the tailer's offsets (see tail.py)

``follow_records(path, offset, finished=...)`` yields ``(record, resume_offset)``: whole
lines (PARTIAL fragments joined; multiline groups too when asked), in the order they were
completed. Store ``resume_offset`` durably after delivering ``record`` and pass it back as
``start_offset`` after a restart: nothing is skipped. Delivery is at-least-once: a record
is only seen again after a restart when it completed while a longer line of the *other*
stream of the same file was still incomplete (a line over ``max-line``, or an open
multiline group); then the resume offset points before that longer line.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

from hatoba.logs.reader import ReadOptions, RecordCursor
from hatoba.logs.records import LogRecord
from hatoba.model.layout import DataLayout

FILES_DIR = "files"
RECORD_SUFFIX = ".log"
FILE_STREAM_PREFIX = "file:"


@dataclass(frozen=True)
class Source:
    """One record file of a container. ``label`` names its stream when the records do not
    (``file:<name>`` for a tailed file); None for stdio.log (stdout/stderr per record)."""

    container: str
    path: Path
    label: str | None = None


def files_dir(layout: DataLayout, task_id: str, container: str) -> Path:
    return layout.container_dir(task_id, container) / FILES_DIR


def file_record_path(directory: Path, name: str) -> Path:
    """The record file of tailed source ``name`` (any characters: it is quoted)."""
    return directory / (quote(name, safe="") + RECORD_SUFFIX)


def container_sources(layout: DataLayout, task_id: str, container: str) -> list[Source]:
    """stdio.log first, then each tailed file's records, by name (files that exist)."""
    out = [Source(container, layout.container_log(task_id, container))]
    try:
        names = sorted(os.listdir(files_dir(layout, task_id, container)))
    except OSError:
        return out
    directory = files_dir(layout, task_id, container)
    for fname in names:
        if fname.endswith(RECORD_SUFFIX) and not fname.startswith("."):
            name = unquote(fname[: -len(RECORD_SUFFIX)])
            out.append(Source(container, directory / fname, FILE_STREAM_PREFIX + name))
    return out


async def follow_records(
    path: Path,
    start_offset: int = 0,
    *,
    finished: Callable[[], Awaitable[bool]],
    options: ReadOptions | None = None,
    poll_interval: float = 0.2,
) -> AsyncIterator[tuple[LogRecord, int]]:
    """Every record of one record file from ``start_offset``, as it is written, until
    ``finished()`` (the task is STOPPED: its files are complete) and all is read.

    Yields ``(record, resume_offset)``; see the module docstring for the guarantee. Reads
    run in a worker thread, in chunks, so a large backlog neither blocks the event loop
    nor sits in memory at once. The path may not exist yet (a container not started)."""
    cursor = RecordCursor(path, start_offset, options)
    while True:
        done = await finished()  # before reading: what follows is then complete
        while cursor.has_new_data():
            before = cursor.offset
            for item in await asyncio.to_thread(cursor.read):
                yield item
            if cursor.offset == before:
                break  # a record still being written
        if done:
            for item in cursor.finish():
                yield item
            return
        for item in cursor.flush_idle():
            yield item
        await asyncio.sleep(poll_interval)
