"""One task's life on this node: activate, start containers in dependency order, watch
them, stop them in reverse order, record everything.

The runner is level-triggered: each pass acts on the task as the store last had it (desired
status, container states), so a restarted control plane resumes any task wherever it was.
Container exits, health changes and store changes only ``poke`` it. It keeps the newest
version it knows of: the one it wrote last, or one the change feed handed over as committed
by this process; a poke without a version (someone else wrote) makes the next pass re-read.
Writes are compare-and-set, so acting on a version that turns out to be old costs a retry,
never a lost update.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from hatoba.agent import lifecycle
from hatoba.agent.health import HealthPolicy, health_argv, health_loop
from hatoba.agent.log_tails import TaskLogTails
from hatoba.agent.specs import SpecError, build_specs, read_environment_files, secret_refs
from hatoba.controllers.task_updates import mutate_task
from hatoba.drivers.protocol import ContainerSpec, Driver, ExecProcess, ExecSpec, StartError
from hatoba.model.clock import Clock
from hatoba.model.errors import NotFound
from hatoba.model.layout import DataLayout
from hatoba.model.task import (
    Container,
    ContainerStatus,
    DesiredStatus,
    HealthStatus,
    LastStatus,
    StopCode,
    Task,
)
from hatoba.model.taskdef import TaskDefinition
from hatoba.model.taskdef_logs import DEFAULT_MAX_LINE
from hatoba.secrets.protocol import SecretResolver, SecretUnavailable
from hatoba.store.protocol import Store
from hatoba.supervise import Supervisor

log = logging.getLogger("hatoba.agent")


@dataclass
class RunnerContext:
    store: Store
    driver: Driver
    clock: Clock
    layout: DataLayout
    secrets: SecretResolver
    base_env: dict[str, str]
    taskdef_cache: dict[str, TaskDefinition] = field(default_factory=dict)
    # hatoba's per-task variables (HATOBA_AGENT_URI, HATOBA_TASK_TOKEN), from server.py
    task_env: Callable[[Task], Mapping[str, str]] | None = None
    log_max_line: int = DEFAULT_MAX_LINE  # the node's longest log record (HATOBA_LOG_MAX_LINE)


class TaskRunner:
    def __init__(
        self, ctx: RunnerContext, task_id: str, task: Task | None = None, *, fresh: bool = False
    ) -> None:
        self.ctx = ctx
        self.task_id = task_id
        self._known: Task | None = task  # the newest version known; saves reads
        self._stale = task is None  # the store may hold a newer version: read it
        # created in this process a moment ago: nothing can have been started for it yet
        self._fresh = fresh
        self._poke = asyncio.Event()
        self._children = Supervisor(f"task/{task_id}")
        self._watched: set[str] = set()
        self._health: set[str] = set()
        self._stop_sent: set[str] = set()
        self._specs: dict[str, ContainerSpec] | None = None
        self._td: TaskDefinition | None = None
        self._tails = TaskLogTails(ctx.layout, task_id, ctx.log_max_line)

    def poke(self, task: Task | None = None) -> None:
        """Something changed: ``task`` is the version as just committed or read, None
        when unknown (the next pass reads the store)."""
        if task is None:
            self._stale = True
        elif not self._learn(task):
            return  # a version it already has (the feed's echo of its own write): no news
        self._poke.set()

    def _learn(self, task: Task) -> bool:
        """Keep ``task`` if it is newer than the version known; True if it was."""
        if self._known is None or task.version > self._known.version:
            self._known = task
            return True
        return False

    # -- helpers -------------------------------------------------------------------------
    async def _current(self) -> Task | None:
        """The newest version known, read from the store when it may be out of date."""
        if self._stale or self._known is None:
            self._stale = False
            self._known = await self.ctx.store.get_task(self.task_id)
        return self._known

    async def _mutate(
        self, change: Callable[[Task], Task | None], current: Task | None = None
    ) -> Task:
        if current is None and not self._stale:
            current = self._known
        task = await mutate_task(self.ctx.store, self.task_id, change, current=current)
        self._learn(task)
        return task

    async def _taskdef(self, task: Task) -> TaskDefinition:
        if self._td is None:
            self._td = self.ctx.taskdef_cache.get(task.task_definition_arn)
        if self._td is None:
            family, rev = task.task_definition_arn.rsplit(":", 1)
            td = await self.ctx.store.get_task_definition(family, int(rev))
            if td is None:
                raise NotFound(f"task definition {task.task_definition_arn} is gone")
            # a revision's containers never change, so every runner can share it
            self.ctx.taskdef_cache[td.arn] = td
            self._td = td
        return self._td

    async def specs(self, task: Task) -> dict[str, ContainerSpec]:
        """Resolve env files and secrets (I/O), then build every container's spec."""
        if self._specs is None:
            td = await self._taskdef(task)
            file_env = {}
            secrets = {}
            for c in td.container_definitions:
                file_env[c.name] = read_environment_files(c)
                refs = secret_refs(c)
                if refs:
                    try:
                        secrets[c.name] = dict(await self.ctx.secrets.resolve(refs))
                    except SecretUnavailable as exc:
                        raise SpecError(str(exc)) from exc
            self._specs = build_specs(
                td,
                task,
                self.ctx.layout,
                base_env=self.ctx.base_env,
                file_env=file_env,
                secrets=secrets,
                task_env=self.ctx.task_env(task) if self.ctx.task_env else None,
                max_line=self.ctx.log_max_line,
            )
        return self._specs

    # -- the loop ------------------------------------------------------------------------
    async def run(self) -> None:
        try:
            while True:
                self._poke.clear()
                task = await self._current()
                if task is None or task.last_status == LastStatus.STOPPED:
                    return
                deadline = await self._step(task)
                if deadline is None:
                    await self._poke.wait()
                else:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(max(deadline, 0.0)):
                            await self._poke.wait()
        finally:
            await self._children.close()

    async def _step(self, task: Task) -> float | None:
        """One level-triggered pass. Returns seconds until something is due, or None."""
        if (
            task.desired_status == DesiredStatus.STOPPED
            or task.last_status.rank >= LastStatus.DEACTIVATING.rank
        ):
            await self._stop(task)
            return None
        # PENDING -> RUNNING in one write: ACTIVATING is where ECS registers load balancer
        # targets and service discovery; until hatoba has those it passes through it
        # without a write of its own, which keeps a task's start to one store write.
        try:
            specs = await self.specs(task)
        except (SpecError, NotFound) as exc:
            await self._request_stop(StopCode.TASK_FAILED_TO_START, str(exc))
            return 0.0
        await self._adopt(task, specs)
        task = await self._start_ready(task, specs)
        return await self._decide(task)

    async def _adopt(self, task: Task, specs: dict[str, ContainerSpec]) -> None:
        """Watch every started container not yet watched (after a restart: recover it)."""
        for c in task.containers:
            if c.last_status != ContainerStatus.RUNNING or c.name in self._watched:
                continue
            handle = c.handle or {}
            if await self.ctx.driver.recover(handle):
                self._watch(c.name, handle, specs[c.name])
            else:
                await self._record_exit(
                    c.name,
                    None,
                    "HostError: the container was lost while the control "
                    "plane was down (no exit status was recorded)",
                )

    async def _start_ready(self, task: Task, specs: dict[str, ContainerSpec]) -> Task:
        deps = self._deps(await self._taskdef(task))
        while True:
            ready = lifecycle.startable(task.containers, deps)
            if not ready:
                return task
            started: dict[str, tuple[dict[str, object], int | None]] = {}
            failed: dict[str, str] = {}
            results = await asyncio.gather(
                *(self._start_one(specs[n]) for n in ready), return_exceptions=True
            )
            for name, res in zip(ready, results, strict=True):
                if isinstance(res, StartError):
                    failed[name] = res.reason
                elif isinstance(res, BaseException):
                    failed[name] = f"CannotStartContainerError: {res}"
                else:
                    pid = res.get("pid")
                    started[name] = (res, pid if isinstance(pid, int) else None)
            task = await self._mutate(
                _record_starts(started, failed, self.ctx.clock.now()), current=task
            )
            for name in started:
                self._watch(name, started[name][0], specs[name])
            if failed:
                return task

    async def _start_one(self, spec: ContainerSpec) -> dict[str, object]:
        """Start a container, or adopt the copy an earlier control plane started but did
        not live to record (only possible for tasks this runner did not see created)."""
        if not self._fresh:
            found = await self.ctx.driver.find(spec)
            if found is not None:
                return found
        return await self.ctx.driver.start(spec)

    def _deps(self, td: TaskDefinition) -> lifecycle.Dependencies:
        return {
            c.name: [lifecycle.Dependency(d.container_name, d.condition) for d in c.depends_on]
            for c in td.container_definitions
        }

    async def _decide(self, task: Task) -> float | None:
        """Should the task stop now? Otherwise, when is the next deadline?"""
        if task.desired_status == DesiredStatus.STOPPED:
            return 0.0
        td = await self._taskdef(task)
        must_stop = _stop_reason(task.containers, self._deps(td))
        if must_stop is not None:
            await self._request_stop(*must_stop)
            return 0.0
        if task.last_status.rank < LastStatus.RUNNING.rank and lifecycle.essentials_running(
            task.containers
        ):
            await self._mutate(_mark_running(self.ctx.clock.now()))
        if task.timeout_seconds is not None and task.started_at is not None:
            left = task.timeout_seconds - (self.ctx.clock.now() - task.started_at).total_seconds()
            if left <= 0:
                await self._request_stop(
                    StopCode.TASK_TIMED_OUT,
                    f"Task timed out: exceeded its maximum run time of {task.timeout_seconds:g}s",
                )
                return 0.0
            return left
        return None

    async def _request_stop(
        self, code: StopCode, reason: str, exit_container: str | None = None
    ) -> None:
        """The runner decided the task must stop: desired STOPPED and lastStatus STOPPING in
        one write (DEACTIVATING has nothing to do until hatoba has load balancers)."""
        now = self.ctx.clock.now()

        def change(t: Task) -> Task | None:
            if t.desired_status == DesiredStatus.STOPPED:
                return None
            _apply_stop(t, (code, reason, exit_container), now)
            return t

        await self._mutate(change)
        self._poke.set()  # _mutate already knows the version it wrote

    # -- watching containers -------------------------------------------------------------
    def _watch(self, name: str, handle: dict[str, object], spec: ContainerSpec) -> None:
        self._watched.add(name)
        self._children.start(self._wait_exit(name, handle), f"wait/{name}")
        td = self._td
        if td is None:
            return
        cdef = next(c for c in td.container_definitions if c.name == name)
        if cdef.log_files:
            self._children.start(self._tails.follow(cdef), f"tail/{name}")
        if cdef.health_check is not None and name not in self._health:
            self._health.add(name)
            hc = cdef.health_check
            policy = HealthPolicy(
                argv=health_argv(list(hc.command)),
                interval=float(hc.interval),
                timeout=float(hc.timeout),
                retries=hc.retries,
                start_period=float(hc.start_period),
            )

            async def start_check(exec_spec: ExecSpec) -> ExecProcess:
                return await self.ctx.driver.exec_process(handle, spec, exec_spec)

            async def report(status: HealthStatus, failures: int) -> None:
                await self._record_health(name, status, failures)

            self._children.start(
                health_loop(policy, start_check, self.ctx.clock, report), f"health/{name}"
            )

    async def _wait_exit(self, name: str, handle: dict[str, object]) -> None:
        status = await self.ctx.driver.wait(handle)
        await self._record_exit(name, status.exit_code, status.reason)

    async def _record_exit(self, name: str, exit_code: int | None, reason: str | None) -> None:
        """Record a container's exit and, in the same write, the stop request it implies
        (``_decide`` would make it on the next pass: this saves a write per task)."""
        now = self.ctx.clock.now()
        deps = self._deps(self._td) if self._td is not None else None

        def change(t: Task) -> Task:
            c = t.container(name)
            c.last_status = ContainerStatus.STOPPED
            c.exit_code = exit_code
            c.reason = reason
            c.stopped_at = now
            # only once every container has started: before that, _step may still start
            # one (a dependency just completed) before it decides
            if (
                deps is not None
                and t.desired_status != DesiredStatus.STOPPED
                and all(x.last_status != ContainerStatus.PENDING for x in t.containers)
            ):
                must_stop = _stop_reason(t.containers, deps)
                if must_stop is not None:
                    _apply_stop(t, must_stop, now)
            return t

        await self._mutate(change)
        self._poke.set()

    async def _record_health(self, name: str, status: HealthStatus, failures: int) -> None:
        td = self._td
        checked = {c.name for c in td.container_definitions if c.health_check} if td else set()

        def change(t: Task) -> Task:
            c = t.container(name)
            c.health_status = status
            c.health_failures = failures
            t.health_status = lifecycle.task_health(t.containers, checked)
            return t

        await self._mutate(change)
        self._poke.set()

    # -- stopping --------------------------------------------------------------------------
    async def _stop(self, task: Task) -> None:
        """Stop containers in reverse dependency order, then release their resources.

        Persisted: STOPPING, then STOPPED once everything is gone. DEACTIVATING and
        DEPROVISIONING are passed through without writes of their own while there is no
        load balancer to deregister from and nothing to release but local cgroups."""
        if task.last_status.rank < LastStatus.STOPPING.rank:
            task = await self._mutate(_set_status(LastStatus.STOPPING), current=task)
        td = await self._taskdef(task)
        if any(c.last_status == ContainerStatus.RUNNING for c in task.containers):
            try:
                specs = await self.specs(task)
            except SpecError:
                specs = {}
            await self._adopt(task, specs)
        for wave in lifecycle.stop_waves(task.containers, self._deps(td)):
            await self._stop_wave(wave)
        await self._children.close()
        fresh = await self._current()
        for c in (fresh or task).containers:
            if c.handle:
                try:
                    await self.ctx.driver.destroy(c.handle)
                except Exception:
                    log.exception("task %s: destroying %s failed", task.task_id, c.name)
        await self._tails.drain(td)  # tailed files to their end, durably, before STOPPED
        await self._mutate(_set_stopped(self.ctx.clock.now()), current=fresh)

    async def _stop_wave(self, names: list[str]) -> None:
        while True:
            self._poke.clear()  # before looking: a poke while we look is not lost
            task = await self._current()
            if task is None:
                return
            running = [
                c
                for c in task.containers
                if c.name in names and c.last_status == ContainerStatus.RUNNING
            ]
            if not running:
                return
            for c in running:
                if c.name in self._stop_sent:
                    continue
                self._stop_sent.add(c.name)
                spec = (self._specs or {}).get(c.name)
                signal = spec.stop_signal if spec else "SIGTERM"
                timeout = spec.stop_timeout if spec else 30.0
                if c.handle is not None:
                    await self.ctx.driver.stop(c.handle, signal, timeout)
            await self._poke.wait()


StopRequest = tuple[StopCode, str, str | None]  # stop code, reason, exit container


def _stop_reason(containers: list[Container], deps: lifecycle.Dependencies) -> StopRequest | None:
    """Must a task whose containers are in these states stop (and why)?"""
    essential = lifecycle.exited_essential(containers)
    if essential is not None:
        return (
            StopCode.ESSENTIAL_CONTAINER_EXITED,
            "Essential container in task exited",
            essential.name,
        )
    blocked = lifecycle.blocked_forever(containers, deps)
    if blocked is not None:
        return StopCode.TASK_FAILED_TO_START, blocked, None
    if lifecycle.all_stopped(containers):
        return StopCode.ESSENTIAL_CONTAINER_EXITED, "All containers exited", None
    return None


def _apply_stop(t: Task, request: StopRequest, now: datetime) -> None:
    """Desired STOPPED and lastStatus STOPPING in one write (DEACTIVATING has nothing to
    do until hatoba has load balancers)."""
    code, reason, exit_container = request
    t.desired_status = DesiredStatus.STOPPED
    t.stop_code = code
    t.stopped_reason = reason
    t.stopping_at = now
    if t.last_status.rank < LastStatus.STOPPING.rank:
        t.last_status = LastStatus.STOPPING
    if exit_container is not None:
        t.exit_container = exit_container


def _record_starts(
    started: dict[str, tuple[dict[str, object], int | None]],
    failed: dict[str, str],
    now: datetime,
) -> Callable[[Task], Task]:
    """Record containers that started (handle, pid) or failed to; a failure stops the task
    with TaskFailedToStart; the task is RUNNING once every essential container runs."""

    def change(t: Task) -> Task:
        for c in t.containers:
            if c.name in started:
                c.handle, c.pid = started[c.name]
                c.runtime_id = f"{t.task_id}-{c.name}"
                c.last_status = ContainerStatus.RUNNING
                c.started_at = now
            elif c.name in failed:
                c.reason = failed[c.name]
                c.last_status = ContainerStatus.STOPPED
                c.stopped_at = now
        if failed and t.desired_status == DesiredStatus.RUNNING:
            t.desired_status = DesiredStatus.STOPPED
            t.stop_code = StopCode.TASK_FAILED_TO_START
            t.stopped_reason = next(iter(failed.values()))
            t.stopping_at = now
        if (
            t.last_status.rank < LastStatus.RUNNING.rank
            and not failed
            and lifecycle.essentials_running(t.containers)
        ):
            t.last_status = LastStatus.RUNNING
            t.started_at = now
        return t

    return change


def _set_status(status: LastStatus) -> Callable[[Task], Task | None]:
    def change(t: Task) -> Task | None:
        if t.last_status.rank >= status.rank:
            return None
        t.last_status = status
        return t

    return change


def _mark_running(now: datetime) -> Callable[[Task], Task | None]:
    def change(t: Task) -> Task | None:
        if t.last_status.rank >= LastStatus.RUNNING.rank:
            return None
        t.last_status = LastStatus.RUNNING
        t.started_at = now
        return t

    return change


def _set_stopped(now: datetime) -> Callable[[Task], Task]:
    def change(t: Task) -> Task:
        for c in t.containers:  # containers that never started are done too
            if c.last_status == ContainerStatus.PENDING:
                c.last_status = ContainerStatus.STOPPED
                c.stopped_at = now
        t.last_status = LastStatus.STOPPED
        t.stopped_at = now
        t.execution_stopped_at = t.execution_stopped_at or now
        return t

    return change
