"""An output's disk buffer: the tasks' own log files, from each source's acknowledged offset.

Nothing is copied. A task's record file (``tasks/ID/CONTAINER/stdio.log``) is already the
durable copy of its output, so what an output still owes is, per (task, container), the bytes
after the offset its receiver acknowledged. Those offsets live in ``STATE_DIR/state.json``
(written atomically after every acknowledged batch), so a restarted shipper goes on exactly
after the last acknowledged batch: nothing lost, and only a batch in flight at the stop can
arrive twice (at least once).

Offsets are ``RecordCursor`` resume offsets (see ``hatoba.logs.source``): reading again from
one never starts inside a line, so a line cut into PARTIAL records or a multiline group
reaches the output whole even across a restart.

The buffer is bounded: when an output owes more than ``limit_bytes`` (a down output, or one
slower than its tasks write), its oldest lines across all sources are skipped until it owes
no more than the limit (``plan_drop``); the caller counts and reports them. They stay in the
task's local log (``hatoba logs`` still shows them), they are just never forwarded.

Because the task's log is the buffer, a stopped task's directory must outlive retention while
an output still owes part of it: ``pending_tasks`` lists those tasks.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import os
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hatoba.logs.multiline import MultilineRule
from hatoba.logs.outputs.events import SourceMeta
from hatoba.logs.reader import ReadOptions, RecordCursor
from hatoba.logs.records import LogRecord

STATE_FILE = "state.json"
STATE_VERSION = 1
DROP_READ_BYTES = 4 * 1024 * 1024  # read at most this much of one source per drop step


def file_size(path: Path | str) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


@dataclass
class SourceState:
    meta: SourceMeta
    path: str
    offset: int = 0  # resume offset after the last acknowledged line
    finished: bool = False  # its task is STOPPED: the file will not grow any more
    multiline: tuple[str, float] | None = None  # (start pattern, timeout s), when joined

    def read_options(self) -> ReadOptions:
        if self.multiline is None:
            return ReadOptions()
        return ReadOptions(multiline=MultilineRule.parse(*self.multiline))

    def cursor(self) -> RecordCursor:
        return RecordCursor(Path(self.path), self.offset, self.read_options())

    def to_json(self) -> dict[str, Any]:
        return {
            "meta": self.meta.to_json(),
            "path": self.path,
            "offset": self.offset,
            "finished": self.finished,
            "multiline": list(self.multiline) if self.multiline else None,
        }

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> SourceState:
        ml = item.get("multiline")
        return cls(
            SourceMeta.from_json(item["meta"]),
            item["path"],
            int(item["offset"]),
            bool(item.get("finished")),
            (str(ml[0]), float(ml[1])) if ml else None,
        )


@dataclass(frozen=True)
class DropPlan:
    offsets: dict[str, int]  # new offsets of the sources that lose lines
    dropped: dict[str, int]  # lines dropped per source key
    freed: int  # bytes


class OutputBuffer:
    def __init__(
        self, directory: Path, limit_bytes: int, spec: dict[str, Any] | None = None
    ) -> None:
        self.directory = directory
        self.limit_bytes = limit_bytes
        self.spec = spec  # a task definition's output keeps its spec here, to resume it
        self.sources: dict[str, SourceState] = {}
        self.done: dict[str, str] = {}  # source key -> path: delivered and finished
        self._saving = asyncio.Lock()  # one write at a time, the newest state last

    # -- persistence ---------------------------------------------------------------------

    @classmethod
    def load(cls, directory: Path, limit_bytes: int) -> OutputBuffer:
        buf = cls(directory, limit_bytes)
        try:
            data = json.loads((directory / STATE_FILE).read_text())
        except FileNotFoundError:
            return buf
        buf.spec = data.get("spec")
        for item in data.get("sources", []):
            state = SourceState.from_json(item)
            buf.sources[state.meta.key] = state
        buf.done = {k: v for k, v in data.get("done", {}).items() if os.path.exists(v)}
        return buf

    def snapshot(self) -> bytes:
        return json.dumps(
            {
                "version": STATE_VERSION,
                "spec": self.spec,
                "sources": [s.to_json() for s in self.sources.values()],
                "done": self.done,
            }
        ).encode()

    def write(self, data: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / (STATE_FILE + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        tmp.replace(self.directory / STATE_FILE)

    async def save(self) -> None:
        async with self._saving:
            await asyncio.to_thread(self.write, self.snapshot())

    # -- sources -------------------------------------------------------------------------

    def add(
        self, meta: SourceMeta, path: Path | str, multiline: tuple[str, float] | None = None
    ) -> bool:
        """Start owing ``path`` from its beginning; False if known (or already delivered)."""
        if meta.key in self.sources or meta.key in self.done:
            return False
        self.sources[meta.key] = SourceState(meta, str(path), multiline=multiline)
        return True

    def mark_finished(self, task_id: str) -> bool:
        changed = False
        for s in self.sources.values():
            if s.meta.task_id == task_id and not s.finished:
                s.finished = changed = True
        return changed

    def commit(self, ends: dict[str, int]) -> None:
        for key, end in ends.items():
            source = self.sources.get(key)
            if source is not None and end > source.offset:
                source.offset = end

    def retire(self, keys: Iterable[str]) -> None:
        """Sources delivered to their end (and finished) leave the buffer."""
        for key in keys:
            source = self.sources.pop(key, None)
            if source is not None:
                self.done[key] = source.path

    def forget_done(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.done.pop(key, None)

    def pending_tasks(self) -> set[str]:
        return {s.meta.task_id for s in self.sources.values()}

    def backlog(self) -> dict[str, int]:
        """Bytes owed per source with a backlog (one ``stat`` each; blocking)."""
        out = {}
        for key, s in list(self.sources.items()):
            owed = file_size(s.path) - s.offset
            if owed > 0:
                out[key] = owed
        return out

    # -- the size limit ------------------------------------------------------------------

    def plan_drop(self) -> DropPlan:
        """Which oldest lines to skip so the backlog fits ``limit_bytes`` (blocking reads:
        run it in a thread). Oldest by timestamp across sources, whole lines only: every
        new offset is a resume offset."""
        states = list(self.sources.items())
        owed = sum(max(0, file_size(s.path) - s.offset) for _, s in states)
        excess = owed - self.limit_bytes
        if excess <= 0:
            return DropPlan({}, {}, 0)
        start = {k: s.offset for k, s in states}
        offsets = dict(start)
        cursors = {k: s.cursor() for k, s in states}
        finished = {k: s.finished for k, s in states}
        queues: dict[str, deque[tuple[LogRecord, int]]] = {}
        heap: list[tuple[int, str]] = []

        def refill(key: str) -> None:
            cursor = cursors[key]
            got: list[tuple[LogRecord, int]] = []
            while not got:
                before = cursor.offset
                got = cursor.read(DROP_READ_BYTES)
                if cursor.offset == before:  # nothing more on disk
                    if not got and finished[key]:
                        got = cursor.finish()
                    break
            queues[key] = deque(got)
            if got:
                heapq.heappush(heap, (got[0][0].timestamp_ns, key))

        for key, _ in states:
            refill(key)
        freed = 0
        dropped: Counter[str] = Counter()
        while freed < excess and heap:
            _, key = heapq.heappop(heap)
            _, resume = queues[key].popleft()
            if resume > offsets[key]:
                freed += resume - offsets[key]
                offsets[key] = resume
            dropped[key] += 1
            if not queues[key]:
                refill(key)
            else:
                heapq.heappush(heap, (queues[key][0][0].timestamp_ns, key))
        changed = {k: v for k, v in offsets.items() if v != start[k]}
        return DropPlan(changed, dict(dropped), freed)
