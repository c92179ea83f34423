"""The agent for this node: registers the node, re-adopts its tasks after a restart, and
keeps one ``TaskRunner`` per live task, woken by the store's change feed.

Level-triggered: besides reacting to changes, it rescans its tasks every ``resync``
seconds, so a missed wake-up costs latency, never correctness. A change this process made
comes off the feed with the task as committed, which goes to the runner as it is (no read).
"""

from __future__ import annotations

import asyncio
import logging
import os
import platform
import shutil
import socket
import uuid
from collections.abc import Mapping
from datetime import timedelta

import psutil

from hatoba.agent.log_shipper import LogShipper
from hatoba.agent.runner import RunnerContext, TaskRunner
from hatoba.drivers.protocol import ContainerSpec, ExecProcess, ExecSpec
from hatoba.logs.retention import DEFAULT_MAX_BYTES, enforce_log_budget
from hatoba.model.errors import Conflict, NotFound
from hatoba.model.layout import DataLayout
from hatoba.model.node import Node
from hatoba.model.task import ContainerStatus, LastStatus, Task
from hatoba.store.protocol import Change
from hatoba.supervise import Supervisor

log = logging.getLogger("hatoba.agent")
CHANGE_FEED_KEPT = timedelta(hours=1)
LIVE = [s for s in LastStatus if s != LastStatus.STOPPED]
LOG_BUDGET_EVERY = 30.0  # seconds between checks of the log store's total size


def local_node_id(layout: DataLayout) -> str:
    """A stable id for this machine's node, kept in the data directory."""
    path = layout.home / "node-id"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        node_id = "node-" + uuid.uuid4().hex[:12]
        layout.home.mkdir(parents=True, exist_ok=True)
        path.write_text(node_id + "\n")
        return node_id


def machine_attributes() -> dict[str, str]:
    """The built-in attributes, with ECS's names for os and cpu architecture as aliases
    (ECS says ``arm64`` where Linux says ``aarch64``)."""
    os_name, arch = platform.system().lower(), platform.machine()
    return {
        "os": os_name,
        "arch": arch,
        "hostname": socket.gethostname(),
        "ecs.os-type": os_name,
        "ecs.cpu-architecture": {"aarch64": "arm64", "amd64": "x86_64"}.get(arch.lower(), arch),
    }


def describe_this_machine(
    node_id: str, driver: str, now: object, attributes: Mapping[str, str] | None = None
) -> Node:
    """This machine as a node; ``attributes`` (from ``HATOBA_NODE_ATTRIBUTES``) join the
    built-in ones, which win on a clash."""
    return Node.model_validate(
        {
            "nodeId": node_id,
            "hostname": socket.gethostname(),
            "cpu": 1024 * (os.cpu_count() or 1),
            "memory": psutil.virtual_memory().total // (1024 * 1024),
            "attributes": {**(attributes or {}), **machine_attributes()},
            "driver": driver,
            "registeredAt": now,
            "heartbeatAt": now,
        }
    )


class NodeAgent:
    def __init__(
        self,
        ctx: RunnerContext,
        node_id: str,
        *,
        resync: float = 5.0,
        retention: timedelta = timedelta(days=7),
        attributes: Mapping[str, str] | None = None,
        log_max_bytes: int = DEFAULT_MAX_BYTES,
        log_shipper: LogShipper | None = None,
    ) -> None:
        self.ctx = ctx
        self.log_shipper = log_shipper  # forwards the logs of every task run here
        self.log_max_bytes = log_max_bytes
        self._next_log_check = 0.0
        self.attributes = dict(attributes or {})
        self.node_id = node_id
        self.resync = resync
        self.retention = retention
        self._runners: dict[str, TaskRunner] = {}
        self._supervisor = Supervisor("agent")
        self.ready = asyncio.Event()

    async def register(self) -> Node:
        now = self.ctx.clock.now()
        fresh = describe_this_machine(self.node_id, self.ctx.driver.name, now, self.attributes)
        existing = await self.ctx.store.get_node(self.node_id)
        if existing is not None:
            fresh.registered_at = existing.registered_at
            fresh.status = existing.status
            # attributes are this machine's and its config's as of now: an attribute
            # dropped from HATOBA_NODE_ATTRIBUTES goes away at the next start
            fresh.version = existing.version
        return await self.ctx.store.put_node(fresh)

    def offer(self, task: Task) -> None:
        """A task just placed by this process's controller: start on it at once, without
        waiting for the change feed to bring it (saves reads on the start path)."""
        if task.node_id == self.node_id and self.ready.is_set():
            self._ensure_runner(task.task_id, task, fresh=True)

    def _ensure_runner(
        self, task_id: str, task: Task | None = None, *, fresh: bool = False
    ) -> None:
        runner = self._runners.get(task_id)
        if runner is not None:
            runner.poke(task)
            return
        runner = TaskRunner(self.ctx, task_id, task, fresh=fresh)
        self._runners[task_id] = runner
        if self.log_shipper is not None:
            self.log_shipper.track(task_id, task)

        async def run() -> None:
            try:
                await runner.run()
            finally:
                if self._runners.get(task_id) is runner:
                    del self._runners[task_id]

        self._supervisor.start(run(), f"task/{task_id}")

    async def _scan(self) -> None:
        for task in await self.ctx.store.list_tasks(node_id=self.node_id, last_statuses=LIVE):
            self._ensure_runner(task.task_id, task)

    async def run(self) -> None:
        """Run until cancelled. Containers keep running when this stops."""
        store = self.ctx.store
        await self.register()
        seq = await store.last_change_seq()
        await self._scan()
        self.ready.set()
        loop = asyncio.get_running_loop()
        next_resync = loop.time() + self.resync
        try:
            while True:
                new_seq = await store.wait_for_change(seq, max(0.0, next_resync - loop.time()))
                if new_seq > seq:
                    for change in await store.changes_since(seq):
                        if change.kind == "task":
                            await self._on_task_change(change)
                    seq = new_seq
                if loop.time() >= next_resync:
                    next_resync = loop.time() + self.resync
                    await self._housekeeping()
        finally:
            await self._supervisor.close()

    async def _on_task_change(self, change: Change) -> None:
        task_id = change.key
        task = change.value if isinstance(change.value, Task) else None
        runner = self._runners.get(task_id)
        if runner is not None:
            runner.poke(task)  # None: the runner reads the store
            return
        if task is None:
            task = await self.ctx.store.get_task(task_id)
        if (
            task is not None
            and task.node_id == self.node_id
            and task.last_status != LastStatus.STOPPED
        ):
            # A task this process just created (the feed has it at version 1, and only
            # this process's commits come with their value) has had nothing started for
            # it yet, exactly as one handed over by ``offer``: no search for a copy that
            # an earlier control plane may have started. The feed can bring it first.
            fresh = task is change.value and task.version == 1
            self._ensure_runner(task_id, task, fresh=fresh)

    async def _housekeeping(self) -> None:
        await self._scan()
        try:
            node = await self.ctx.store.get_node(self.node_id)
            if node is not None:
                node.heartbeat_at = self.ctx.clock.now()
                await self.ctx.store.put_node(node)
        except Conflict:
            pass
        now = self.ctx.clock.now()
        purged = await self.ctx.store.delete_stopped_tasks(now - self.retention)
        owed = self.log_shipper.pending_tasks() if self.log_shipper is not None else set()
        for task_id in purged:  # logs can be large: delete them off the event loop
            if task_id in owed and self.log_shipper is not None:
                self.log_shipper.remove_when_shipped(task_id)  # an output still owes them
                continue
            await asyncio.to_thread(
                shutil.rmtree, self.ctx.layout.task_dir(task_id), ignore_errors=True
            )
        # the change feed only wakes loops up; an hour of it is plenty for any reader
        await self.ctx.store.prune_changes(now - CHANGE_FEED_KEPT)
        loop = asyncio.get_running_loop()
        if loop.time() >= self._next_log_check:  # retention by size, oldest stopped first
            self._next_log_check = loop.time() + LOG_BUDGET_EVERY
            await enforce_log_budget(
                self.ctx.store, self.ctx.layout, self.node_id, self.log_max_bytes, owed
            )

    async def exec(self, task_id: str, container: str | None, exec_spec: ExecSpec) -> ExecProcess:
        """Start a command inside a running container of a task on this node."""
        task = await self.ctx.store.get_task(task_id)
        if task is None:
            raise NotFound(f"task {task_id} not found")
        if task.node_id != self.node_id:
            raise Conflict(f"task {task_id} runs on node {task.node_id}, not this one")
        name = container or task.containers[0].name
        try:
            c = task.container(name)
        except KeyError:
            names = ", ".join(x.name for x in task.containers)
            raise NotFound(f"task {task_id} has no container {name!r} (it has: {names})") from None
        if c.last_status != ContainerStatus.RUNNING or c.handle is None:
            raise Conflict(f"container {name!r} is {c.last_status.value}, not RUNNING")
        runner = self._runners.get(task_id) or TaskRunner(self.ctx, task_id)
        specs: dict[str, ContainerSpec] = await runner.specs(task)
        return await self.ctx.driver.exec_process(c.handle, specs[name], exec_spec)
