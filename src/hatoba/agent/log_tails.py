"""The file tailers of one task (containers with ``logFiles``), owned by its runner: one
polling loop per container while it runs, and a drain of every tailer before the task may
be recorded STOPPED (like the shim's fsync before its exit file)."""

from __future__ import annotations

import asyncio
import logging
import os

from hatoba.logs.source import files_dir
from hatoba.logs.tail import READ_CHUNK, FileTailer, TailSpec
from hatoba.model.layout import DataLayout
from hatoba.model.taskdef import ContainerDefinition, TaskDefinition
from hatoba.model.taskdef_logs import DEFAULT_MAX_LINE, log_settings

log = logging.getLogger("hatoba.agent")
POLL_INTERVAL = 0.2
ERROR_BACKOFF = 5.0


def tail_specs(c: ContainerDefinition) -> list[TailSpec]:
    """The container's ``logFiles``, relative paths resolved against its workingDirectory."""
    cwd = c.working_directory or os.getcwd()  # validation wants a cwd for relative paths
    return [TailSpec(os.path.join(cwd, f.path), f.tag) for f in c.log_files]


class TaskLogTails:
    def __init__(
        self,
        layout: DataLayout,
        task_id: str,
        max_line: int = DEFAULT_MAX_LINE,
        poll_interval: float = POLL_INTERVAL,
    ) -> None:
        self.layout = layout
        self.task_id = task_id
        self.max_line = max_line
        self.poll_interval = poll_interval
        self._tailers: dict[str, FileTailer] = {}

    def tailer(self, c: ContainerDefinition) -> FileTailer | None:
        if not c.log_files:
            return None
        t = self._tailers.get(c.name)
        if t is None:
            t = FileTailer(
                files_dir(self.layout, self.task_id, c.name),
                tail_specs(c),
                max_line=log_settings(c).max_line or self.max_line,
            )
            self._tailers[c.name] = t
        return t

    async def follow(self, c: ContainerDefinition) -> None:
        """Poll the container's files until cancelled (back to back while they grow fast)."""
        t = self.tailer(c)
        if t is None:
            return
        while True:
            try:
                n = await asyncio.to_thread(t.poll)
            except OSError as exc:
                log.warning("task %s: tailing %s's files: %s", self.task_id, c.name, exc)
                await asyncio.sleep(ERROR_BACKOFF)
                continue
            if n < READ_CHUNK:
                await asyncio.sleep(self.poll_interval)

    async def drain(self, td: TaskDefinition) -> None:
        """Read every declared file to its end and make it durable (containers exited)."""
        for c in td.container_definitions:
            t = self.tailer(c)
            if t is None:
                continue
            try:
                await asyncio.to_thread(t.drain)
            except Exception:  # a full disk must not keep the task from stopping
                log.exception("task %s: draining %s's log files failed", self.task_id, c.name)
