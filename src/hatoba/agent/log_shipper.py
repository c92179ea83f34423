"""The node's log shipper: forwards its tasks' logs to their outputs.

```
agent ──track(task)──▶ LogShipper ──add source──▶ OutputBuffer (offsets, state.json)
                           │                            ▲ commit after each ack
                           └── one OutputWorker per output ──send──▶ forward | http | file
```

The agent hands every task it runs to ``track``. For each container the shipper works out
its outputs: the task definition's ``logConfiguration`` (fluentd / awsfirelens) and every
cluster output whose ``match`` takes it, and adds the container's record file to each
output's buffer. A worker per output (one asyncio task, supervised) reads and delivers.
The shipper polls the store for the tasks it still ships to learn when they are STOPPED
(their files are then complete) and retires sources delivered to their end.

State lives in ``HATOBA_HOME/log-shipper/``: one directory per output (``state.json``), and
``removals.json``, the stopped tasks whose directories retention deferred (see
``pending_tasks``). A task definition's output keeps its spec in its state, so after a
restart it resumes before any task asks for it; it is removed once it owes nothing.

For retention (``NodeAgent`` today, the log store's own retention later): a task in
``pending_tasks()`` still owes logs to some output; do not delete its directory, hand it to
``remove_when_shipped(task_id)`` instead, and the shipper deletes it once it is delivered
(or its backlog was dropped by the buffer limit).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hatoba.logs.buffer import OutputBuffer
from hatoba.logs.outputs.events import SourceMeta
from hatoba.logs.outputs.factory import build_output
from hatoba.logs.outputs.metrics import OutputMetrics, default_metrics
from hatoba.logs.outputs.worker import DropNotice, OutputWorker, WorkerSettings
from hatoba.logs.query import read_options
from hatoba.logs.source import container_sources
from hatoba.model.clock import Clock
from hatoba.model.layout import DataLayout
from hatoba.model.log_outputs import (
    OUTPUT_SPEC,
    ClusterOutputs,
    FileOutput,
    ForwardOutput,
    HttpOutput,
    output_from_log_configuration,
)
from hatoba.model.service import ServiceEvent
from hatoba.model.task import LastStatus, Task
from hatoba.model.taskdef import TaskDefinition
from hatoba.store.protocol import Store
from hatoba.supervise import Supervisor

log = logging.getLogger("hatoba.agent.logs")
DEFAULT_BUFFER_BYTES = 256 * 1024 * 1024
DEFAULT_FLUSH_GRACE = 5.0
SERVICE_PREFIX = "service:"
Spec = ForwardOutput | HttpOutput | FileOutput
LIVE = [s for s in LastStatus if s != LastStatus.STOPPED]


@dataclass(frozen=True)
class ShipperSettings:
    cluster: ClusterOutputs = field(default_factory=ClusterOutputs)
    buffer_bytes: int = DEFAULT_BUFFER_BYTES  # per output, unless its spec says otherwise
    flush_grace: float = DEFAULT_FLUSH_GRACE
    poll_interval: float = 0.2  # how often a worker looks for new lines when idle
    refresh_interval: float = 1.0  # how often the store is asked which tasks stopped


@dataclass(frozen=True)
class _Route:
    """Where one container's logs go: its sources (stdio.log, tailed files) to outputs."""

    meta: SourceMeta  # without label
    outputs: tuple[str, ...]
    definition: TaskDefinition | None


@dataclass
class _Running:
    spec: Spec
    worker: OutputWorker
    task: asyncio.Task[None]
    from_taskdef: bool


class LogShipper:
    def __init__(
        self,
        store: Store,
        layout: DataLayout,
        node_id: str,
        clock: Clock,
        settings: ShipperSettings | None = None,
        *,
        metrics: OutputMetrics | None = None,
        output_factory: Callable[[Spec], Any] = build_output,
    ) -> None:
        self.store = store
        self.layout = layout
        self.node_id = node_id
        self.clock = clock
        self.settings = settings or ShipperSettings()
        self.metrics = metrics or default_metrics()
        self._factory = output_factory
        self.root = layout.home / "log-shipper"
        self._outputs: dict[str, _Running] = {}
        self._queue: dict[str, Task | None] = {}
        self._unfinished: set[str] = set()  # tracked tasks not yet seen STOPPED
        self._routes: dict[str, list[_Route]] = {}  # their containers' routes
        self._taskdefs: dict[str, TaskDefinition | None] = {}
        self._removals: set[str] = set()
        self._failures: dict[str, int] = {}  # tasks whose routing failed, how often
        self._supervisor = Supervisor("log-shipper")
        self._wake = asyncio.Event()
        self._closing = False
        self.ready = asyncio.Event()

    # -- the agent's and retention's side ------------------------------------------------

    def track(self, task_id: str, task: Task | None = None) -> None:
        """A task runs (or ran) on this node: ship its containers' logs."""
        if task is not None or task_id not in self._queue:
            self._queue[task_id] = task
        self._wake.set()

    def pending_tasks(self) -> set[str]:
        """Tasks whose logs some output has not received yet (or that are not sorted out
        yet): retention must keep their directories (see ``remove_when_shipped``)."""
        out = set(self._queue)
        for running in self._outputs.values():
            out |= running.worker.buffer.pending_tasks()
        return out

    def remove_when_shipped(self, task_id: str) -> None:
        """Delete the task's directory once no output owes anything of it (persisted)."""
        self._removals.add(task_id)
        self._save_removals()
        self._wake.set()

    def worker(self, name: str) -> OutputWorker | None:
        running = self._outputs.get(name)
        return running.worker if running else None

    # -- running -----------------------------------------------------------------------

    async def run(self) -> None:
        """Until cancelled; ``close`` first flushes within the grace."""
        try:
            await self._restore()
            self.ready.set()
            loop = asyncio.get_running_loop()
            next_refresh = 0.0
            while True:
                if self._closing:  # close() owns the workers now; wait to be cancelled
                    await asyncio.Event().wait()
                try:
                    await self._process_queue()
                    if loop.time() >= next_refresh:
                        next_refresh = loop.time() + self.settings.refresh_interval
                        await self._refresh()
                        await self._housekeeping()
                except Exception:  # the store may be away for a while: try again later
                    log.exception("log shipper: a pass failed; retrying")
                    await asyncio.sleep(self.settings.refresh_interval)
                try:
                    wait = max(0.0, next_refresh - loop.time())
                    await asyncio.wait_for(self._wake.wait(), wait)
                except TimeoutError:
                    pass
                self._wake.clear()
        finally:
            await self._supervisor.close()

    async def close(self) -> None:
        """Deliver what can be delivered within ``flush_grace``; keep the rest (offsets) for
        the next start."""
        self._closing = True
        running = list(self._outputs.values())
        for r in running:
            r.worker.stop()
        tasks = [r.task for r in running if not r.task.done()]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=self.settings.flush_grace)
            for r in running:
                if r.task in late:
                    log.warning("log output %s: flush grace over, the rest waits", r.spec.name)
        await self._supervisor.close()
        for r in running:
            await r.worker.buffer.save()

    async def _restore(self) -> None:
        self._removals = set(_read_json(self.root / "removals.json", []))
        for spec in self.settings.cluster.outputs:
            await self._ensure_output(spec, from_taskdef=False)
        cluster = self.settings.cluster.by_name()
        known = sorted(p for p in self.root.iterdir() if p.is_dir()) if self.root.is_dir() else []
        for directory in known:
            if directory.name in cluster:
                continue
            buffer = OutputBuffer.load(directory, self.settings.buffer_bytes)
            if buffer.spec is None:
                if buffer.sources:
                    log.warning(
                        "log output %s is no longer configured; %d sources left unshipped",
                        directory.name,
                        len(buffer.sources),
                    )
                continue
            if not buffer.sources:
                await asyncio.to_thread(shutil.rmtree, directory, True)
                continue
            try:
                spec = OUTPUT_SPEC.validate_python(buffer.spec)
            except ValueError as exc:
                log.error("log output %s: cannot resume (%s)", directory.name, exc)
                continue
            await self._ensure_output(spec, from_taskdef=True, buffer=buffer)
        for running in self._outputs.values():
            for s in running.worker.buffer.sources.values():
                if not s.finished:
                    self._unfinished.add(s.meta.task_id)

    async def _ensure_output(
        self, spec: Spec, *, from_taskdef: bool, buffer: OutputBuffer | None = None
    ) -> _Running:
        running = self._outputs.get(spec.name)
        if running is not None:
            return running
        limit = spec.buffer_bytes if spec.buffer_bytes is not None else self.settings.buffer_bytes
        directory = self.root / spec.name
        if buffer is None:
            buffer = await asyncio.to_thread(OutputBuffer.load, directory, limit)
        buffer.limit_bytes = limit
        if from_taskdef:
            buffer.spec = spec.model_dump(mode="json", by_alias=True)
        worker = OutputWorker(
            self._factory(spec),
            buffer,
            self.metrics,
            WorkerSettings(
                chunk_records=spec.chunk_records,
                chunk_bytes=spec.chunk_bytes,
                retry_min=spec.retry_min,
                retry_max=spec.retry_max,
                poll_interval=self.settings.poll_interval,
            ),
            on_drop=self._on_drop,
        )
        task = self._supervisor.start(worker.run(), f"output/{spec.name}")
        running = _Running(spec, worker, task, from_taskdef)
        self._outputs[spec.name] = running
        return running

    async def _process_queue(self) -> None:
        while self._queue:
            task_id, task = next(iter(self._queue.items()))
            try:
                await self._add_task(task_id, task)
            except Exception:
                self._failures[task_id] = self._failures.get(task_id, 0) + 1
                if self._failures[task_id] < 5:
                    raise  # kept queued: tried again after a pause
                log.exception("log shipper: giving up on task %s", task_id)
            self._queue.pop(task_id, None)
            self._failures.pop(task_id, None)

    async def _taskdef(self, arn: str) -> TaskDefinition | None:
        if arn not in self._taskdefs:
            family, _, revision = arn.rpartition(":")
            rev = int(revision) if revision.isdigit() else None
            self._taskdefs[arn] = await self.store.get_task_definition(family, rev)
        return self._taskdefs[arn]

    async def _add_task(self, task_id: str, task: Task | None) -> None:
        if task is None:
            task = await self.store.get_task(task_id)
            if task is None:
                return
        td = await self._taskdef(task.task_definition_arn)
        family, _, revision = task.task_definition_arn.rpartition(":")
        group = task.group or ""
        service = group[len(SERVICE_PREFIX) :] if group.startswith(SERVICE_PREFIX) else None
        defs = {c.name: c for c in td.container_definitions} if td else {}
        routes = []
        for name in [c.name for c in task.containers] or list(defs):
            cdef = defs.get(name)
            image = cdef.image if cdef is not None else None
            meta = SourceMeta(task_id, name, family, revision, service, self.node_id, image)
            names: list[str] = []
            if cdef is not None and cdef.log_configuration is not None:
                lc = cdef.log_configuration
                mapped = output_from_log_configuration(family, name, lc.log_driver, lc.options)
                if mapped.spec is not None:
                    await self._ensure_output(mapped.spec, from_taskdef=True)
                    names.append(mapped.spec.name)
            for spec in self.settings.cluster.outputs:
                if spec.match.matches(family, service, name):
                    await self._ensure_output(spec, from_taskdef=False)
                    names.append(spec.name)
            if names:
                routes.append(_Route(meta, tuple(names), td))
        if not routes:
            return
        stopped = task.last_status == LastStatus.STOPPED
        if not stopped:
            self._routes[task_id] = routes
            self._unfinished.add(task_id)
        await self._discover(routes, finished=stopped)

    async def _discover(self, routes: list[_Route], *, finished: bool) -> None:
        """Add the routes' record files (tailed files appear while a task runs) to their
        outputs; ``finished``: the task is STOPPED, its files are complete."""
        touched: set[str] = set()
        for route in routes:
            meta = route.meta
            sources = await asyncio.to_thread(
                container_sources, self.layout, meta.task_id, meta.container
            )
            for src in sources:
                opts = read_options(route.definition, meta.container, src.label, False)
                rule = opts.multiline
                multiline = (rule.start.pattern, rule.timeout_ns / 1e9) if rule else None
                sm = SourceMeta(**{**meta.to_json(), "label": src.label})
                for output in route.outputs:
                    buffer = self._outputs[output].worker.buffer
                    if buffer.add(sm, src.path, multiline):
                        touched.add(output)
        for output in {o for r in routes for o in r.outputs}:
            running = self._outputs[output]
            if finished and running.worker.buffer.mark_finished(routes[0].meta.task_id):
                touched.add(output)
        for output in touched:
            await self._outputs[output].worker.buffer.save()
            self._outputs[output].worker.wake()

    async def _refresh(self) -> None:
        """Which tracked tasks have stopped (their files are complete now); tailed files
        that appeared meanwhile."""
        if not self._unfinished:
            return
        for task_id in sorted(self._routes):
            await self._discover(self._routes[task_id], finished=False)
        live_tasks = await self.store.list_tasks(node_id=self.node_id, last_statuses=LIVE)
        live = {t.task_id for t in live_tasks}
        for task_id in sorted(self._unfinished - live):
            task = await self.store.get_task(task_id)
            if task is not None and task.last_status != LastStatus.STOPPED:
                continue
            self._unfinished.discard(task_id)
            routes = self._routes.pop(task_id, None)
            if routes:  # the last tailed files, then every source is complete
                await self._discover(routes, finished=True)
            for running in self._outputs.values():
                if running.worker.buffer.mark_finished(task_id):
                    await running.worker.buffer.save()
                    running.worker.wake()

    async def _housekeeping(self) -> None:
        pending = self.pending_tasks()
        for task_id in sorted(self._removals - pending):
            await asyncio.to_thread(shutil.rmtree, self.layout.task_dir(task_id), True)
            self._removals.discard(task_id)
            prefix = task_id + "/"
            for running in self._outputs.values():
                running.worker.buffer.forget_done(
                    [k for k in running.worker.buffer.done if k.startswith(prefix)]
                )
            self._save_removals()
        for name, running in list(self._outputs.items()):
            buffer = running.worker.buffer
            if running.from_taskdef and not buffer.sources and not running.worker.failing:
                # a task definition's output that owes nothing: stop it and forget it
                running.worker.stop()
                await asyncio.wait({running.task}, timeout=self.settings.flush_grace)
                running.task.cancel()
                del self._outputs[name]
                await asyncio.to_thread(shutil.rmtree, buffer.directory, True)

    async def _on_drop(self, notice: DropNotice) -> None:
        events = [
            ServiceEvent(
                service_name=meta.service,
                created_at=self.clock.now(),
                message=(
                    f"log output {notice.output} dropped {n} log records of task "
                    f"{meta.task_id} (container {meta.container}): {notice.detail}"
                ),
            )
            for meta, n in notice.counts
            if meta.service
        ]
        if events:
            await self.store.append_service_events(events)

    def _save_removals(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / "removals.json.tmp"
        tmp.write_text(json.dumps(sorted(self._removals)))
        os.replace(tmp, self.root / "removals.json")


def _read_json(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return default
