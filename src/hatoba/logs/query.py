"""Querying and following the logs of one task or of many (a service's, a job's): filters,
``--tail``, interleaving by time, and following tasks that start while it runs.

::

    targets ──refresh()──▶ [LogTask: id, containers, definition, stopped?]
                             │ per task: its record files (container_sources)
                             ▼
    backlog: heapq.merge of every file by timestamp (worker thread, chunked) ─┐
    follow:  poll: read what is new, batch sorted by time ────────────────────┴─▶ batches

A task is done once a refresh *before* a read saw it STOPPED: its files were complete, so
that read got everything (the shim fsyncs before its exit file; the agent drains tailed
files before it records STOPPED).
"""

from __future__ import annotations

import asyncio
import fnmatch
import heapq
import itertools
import os
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field

from hatoba.logs.multiline import MultilineRule
from hatoba.logs.reader import ContainerLogCursor, ReadOptions, TaskLogLine
from hatoba.logs.source import FILE_STREAM_PREFIX, Source, container_sources
from hatoba.model.layout import DataLayout
from hatoba.model.taskdef import ContainerDefinition, TaskDefinition
from hatoba.model.taskdef_logs import has_glob, log_settings

BATCH = 2000
UNTIL_MARGIN_NS = 500_000_000  # a line stamped before --until is on disk by then


@dataclass(frozen=True)
class LogFilter:
    since_ns: int | None = None
    until_ns: int | None = None
    grep: re.Pattern[str] | None = None
    container: str | None = None
    stream: str | None = None  # stdout | stderr | file | file:NAME

    def source_ok(self, source: Source) -> bool:
        if self.container is not None and source.container != self.container:
            return False
        if self.stream is None:
            return True
        if source.label is None:
            return self.stream in ("stdout", "stderr")
        return self.stream in ("file", source.label)

    def line_ok(self, line: TaskLogLine) -> bool:
        ts = line.record.timestamp_ns
        if self.since_ns is not None and ts < self.since_ns:
            return False
        if self.until_ns is not None and ts > self.until_ns:
            return False
        if self.stream in ("stdout", "stderr") and line.stream != self.stream:
            return False
        return self.grep is None or (
            self.grep.search(line.record.data.decode("utf-8", "surrogateescape")) is not None
        )


@dataclass
class LogTask:
    """A task whose logs are read: its containers' names and definition (for options)."""

    task_id: str
    containers: Sequence[str]
    definition: TaskDefinition | None = None
    stopped: bool = False


def read_options(
    definition: TaskDefinition | None, container: str, label: str | None, raw: bool
) -> ReadOptions:
    """How a source is read: raw, or joined (multiline when the container asks)."""
    if raw or definition is None:
        return ReadOptions(raw=raw)
    try:
        c = definition.container(container)
    except KeyError:
        return ReadOptions()
    settings = log_settings(c)
    pattern = settings.multiline_start
    if label is not None:
        override = _log_file_for(c, label.removeprefix(FILE_STREAM_PREFIX))
        if override is not None:
            pattern = override
    if pattern is None:
        return ReadOptions()
    return ReadOptions(multiline=MultilineRule.parse(pattern, settings.multiline_timeout))


def _log_file_for(c: ContainerDefinition, name: str) -> str | None:
    """The ``multilineStart`` of the logFiles entry a tailed source's name came from."""
    for f in c.log_files:
        base = os.path.basename(f.path)
        if has_glob(f.path):
            ok = name.startswith(f"{f.tag}/") if f.tag else fnmatch.fnmatchcase(name, base)
        else:
            ok = name == (f.tag or base)
        if ok:
            return f.multiline_start
    return None


@dataclass
class _Following:
    task: LogTask
    cursors: dict[str, ContainerLogCursor] = field(default_factory=dict)  # by path


class LogQuery:
    def __init__(
        self,
        layout: DataLayout,
        flt: LogFilter | None = None,
        *,
        raw: bool = False,
        tail: int | None = None,
        poll_interval: float = 0.05,
        refresh_interval: float = 0.05,
    ) -> None:
        self.layout = layout
        self.filter = flt or LogFilter()
        self.raw = raw
        self.tail = tail
        self.poll_interval = poll_interval
        self.refresh_interval = refresh_interval
        self._tasks: dict[str, _Following] = {}
        self._done: set[str] = set()

    def _add_sources(self, f: _Following) -> list[ContainerLogCursor]:
        new = []
        for name in f.task.containers:
            if self.filter.container is not None and name != self.filter.container:
                continue
            for src in container_sources(self.layout, f.task.task_id, name):
                if str(src.path) in f.cursors or not self.filter.source_ok(src):
                    continue
                opts = read_options(f.task.definition, name, src.label, self.raw)
                cursor = ContainerLogCursor(
                    name, src.path, label=src.label, options=opts, task_id=f.task.task_id
                )
                f.cursors[str(src.path)] = cursor
                new.append(cursor)
        return new

    def _learn(self, tasks: Sequence[LogTask]) -> None:
        listed = {t.task_id for t in tasks}
        for task_id, following in self._tasks.items():
            if task_id not in listed:  # purged meanwhile: read what is left, then done
                following.task.stopped = True
        for t in tasks:
            if t.task_id in self._done:
                continue
            f = self._tasks.get(t.task_id)
            if f is None:
                self._tasks[t.task_id] = f = _Following(t)
            else:
                f.task.stopped = t.stopped
            self._add_sources(f)

    async def stream(
        self,
        refresh: Callable[[], Awaitable[Sequence[LogTask]]],
        *,
        follow: bool,
        keep_following: Callable[[], Awaitable[bool]] | None = None,
    ) -> AsyncIterator[list[TaskLogLine]]:
        """Batches of lines. Without ``follow``: what is stored, merged by time. With it:
        then what comes, until every task is done and ``keep_following()`` (more tasks may
        come: a service) is false."""
        self._learn(await refresh())
        cursors = [c for f in self._tasks.values() for c in f.cursors.values()]
        async for lines in self._backlog(cursors, finish=not follow):
            yield lines
        if not follow:
            return
        loop = asyncio.get_running_loop()
        next_refresh = 0.0
        while True:
            until = self.filter.until_ns
            past_until = until is not None and time.time_ns() > until + UNTIL_MARGIN_NS
            refreshed = loop.time() >= next_refresh
            if refreshed:
                next_refresh = loop.time() + self.refresh_interval
                self._learn(await refresh())  # before reading: a STOPPED task is complete
            batch: list[TaskLogLine] = []
            for f in list(self._tasks.values()):
                batch.extend(await self._poll(f))
            batch = [line for line in batch if self.filter.line_ok(line)]
            if batch:
                batch.sort(key=lambda line: line.record.timestamp_ns)
                yield batch
            if past_until:  # nothing later can match
                return
            if (
                not self._tasks
                and refreshed
                and (keep_following is None or not await keep_following())
            ):
                return
            if not batch:
                await asyncio.sleep(self.poll_interval)

    async def _poll(self, f: _Following) -> list[TaskLogLine]:
        done = f.task.stopped
        if done:
            self._add_sources(f)  # a tailed file that appeared at the very end
        out: list[TaskLogLine] = []
        for cursor in f.cursors.values():
            if cursor.has_new_data():
                out.extend(await asyncio.to_thread(cursor.read_available))
            out.extend(cursor.flush_idle())
            if done:
                out.extend(cursor.finish())
        if done:
            del self._tasks[f.task.task_id]
            self._done.add(f.task.task_id)
        return out

    async def _backlog(
        self, cursors: list[ContainerLogCursor], *, finish: bool
    ) -> AsyncIterator[list[TaskLogLine]]:
        if not cursors:
            return
        if self.tail is not None:
            last = await asyncio.to_thread(self._tail_lines, cursors, finish)
            for i in range(0, len(last), BATCH):
                yield last[i : i + BATCH]
            return
        merged = heapq.merge(
            *(self._each(c, finish) for c in cursors), key=lambda line: line.record.timestamp_ns
        )
        while batch := await asyncio.to_thread(lambda: list(itertools.islice(merged, BATCH))):
            yield batch

    def _each(self, cursor: ContainerLogCursor, finish: bool) -> Iterator[TaskLogLine]:
        while True:
            before = cursor.offset
            lines = cursor.read_some()
            yield from (line for line in lines if self.filter.line_ok(line))
            if cursor.offset == before:
                break
        if finish:
            yield from (line for line in cursor.finish() if self.filter.line_ok(line))

    def _tail_lines(self, cursors: list[ContainerLogCursor], finish: bool) -> list[TaskLogLine]:
        n = self.tail or 0
        per_source = []
        for cursor in cursors:
            kept: deque[TaskLogLine] = deque(maxlen=n)
            kept.extend(self._each(cursor, finish))
            per_source.append(list(kept))
        merged = list(heapq.merge(*per_source, key=lambda line: line.record.timestamp_ns))
        return merged[-n:] if n else []
