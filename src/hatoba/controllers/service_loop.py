"""The service scheduler: a level-triggered reconcile loop per service.

Only the control plane holding the ``service-scheduler`` lease acts (leader election through
the store, so two control planes on one PostgreSQL never both launch tasks for a service).
Changes to a service, its tasks or any node only mark the service dirty; a worker then
re-reads everything about it, asks the pure planner (``service_plan.plan``) what to do, and
does it: bookkeeping first (compare-and-set), then stops, then launches. A crash between
steps loses nothing, since the next pass re-derives the same decisions from the store.

One key is worked on at a time, different keys in parallel; a full resync every
``resync`` seconds covers any wake-up that was missed, and ``Plan.wake_at`` schedules the
next pass for time-based decisions (restart back-off, health-check grace).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from hatoba.controllers.leadership import LeaderLease, Role, follow_changes
from hatoba.controllers.service_plan import Launch, NodeInfo, PlanInput, Stop, plan
from hatoba.controllers.tasks import ServiceLaunch, Tasks
from hatoba.model.clock import Clock
from hatoba.model.errors import Conflict, HatobaError, NotFound
from hatoba.model.node import Node, NodeStatus
from hatoba.model.service import (
    SchedulingStrategy,
    Service,
    ServiceEvent,
    ServiceStatus,
)
from hatoba.model.task import LastStatus, StopCode, Task
from hatoba.scheduler.constraints import Constraint, MemberOf, parse_constraints
from hatoba.scheduler.query import NodeView
from hatoba.scheduler.strategies import Strategy, parse_strategies
from hatoba.store.protocol import Change, Store
from hatoba.supervise import Supervisor

log = logging.getLogger("hatoba.services")
LEASE = "service-scheduler"
ROLE = Role(LEASE, "the service scheduler", "services", log)
SERVICE_GROUP_PREFIX = "service:"


@dataclass(frozen=True)
class LoopSettings:
    lease_ttl: float = 15.0  # seconds a leader's lease lasts without renewal
    resync: float = 10.0  # seconds between full passes over every service
    workers: int = 8  # services reconciled at once


class ServiceScheduler:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        tasks: Tasks,
        *,
        holder: str,
        settings: LoopSettings | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._tasks = tasks
        self.holder = holder
        self.settings = settings or LoopSettings()
        self._dirty: set[str] = set()
        self._busy: set[str] = set()
        self._wake = asyncio.Event()
        self._timers: dict[str, asyncio.Task[None]] = {}
        self._node_status: dict[str, NodeStatus | None] = {}
        self._starved: set[str] = set()  # services with tasks waiting for a node
        self._daemons: set[str] = set()  # names of DAEMON services (scheduled first)
        self._health_checked: dict[str, bool] = {}  # task definition arn -> (immutable)
        self._lease = LeaderLease(store, clock, ROLE, holder, self.settings.lease_ttl)
        self.is_leader = self._lease.is_leader
        self.passes = 0  # reconcile passes done (for tests and metrics)

    # -- leadership ------------------------------------------------------------------
    async def run(self) -> None:
        """Run until cancelled: campaign for the lease; while holding it, reconcile."""
        await self._lease.run(self._lead, self._stopped)

    def _lead(self, supervisor: Supervisor) -> None:
        supervisor.start(self._watch(), "watch")
        for i in range(self.settings.workers):
            supervisor.start(self._worker(), f"worker-{i}")

    async def _stopped(self) -> None:
        self._timers.clear()

    # -- wake-ups ----------------------------------------------------------------------
    def mark(self, names: Iterable[str]) -> None:
        for name in names:
            self._dirty.add(name)
        self._wake.set()

    async def _mark_all(self) -> None:
        services = await self._store.list_services()
        self._daemons = {
            s.service_name for s in services if s.scheduling_strategy == SchedulingStrategy.DAEMON
        }
        self.mark(s.service_name for s in services)

    async def _watch(self) -> None:
        await follow_changes(self._store, self.settings.resync, self._on_changes, self._mark_all)

    async def _on_changes(self, changes: Iterable[Change]) -> None:
        names: set[str] = set()
        capacity_changed = False
        for change in changes:
            if change.kind == "service":
                names.add(change.key)
            elif change.kind == "node":
                node = change.value if isinstance(change.value, Node) else None
                if node is None:
                    node = await self._store.get_node(change.key)
                status = node.status if node is not None else None
                if self._node_status.get(change.key) != status:  # not a mere heartbeat
                    self._node_status[change.key] = status
                    await self._mark_all()  # drain, a new node (DAEMON), a node gone
                capacity_changed = True
            elif change.kind == "task":
                task = change.value if isinstance(change.value, Task) else None
                if task is None:
                    task = await self._store.get_task(change.key)
                if task is None:
                    continue
                if task.group and task.group.startswith(SERVICE_GROUP_PREFIX):
                    names.add(task.group[len(SERVICE_GROUP_PREFIX) :])
                if task.last_status == LastStatus.STOPPED:
                    capacity_changed = True
        if capacity_changed:
            names |= self._starved  # tasks waiting for a node may fit now
        self.mark(names)

    def _wake_at(self, name: str, at: datetime) -> None:
        """Mark ``name`` dirty at ``at`` (by the injected clock)."""
        delay = max(0.0, (at - self._clock.now()).total_seconds())
        old = self._timers.pop(name, None)
        if old is not None:
            old.cancel()
        supervisor = self._lease.supervisor
        if supervisor is None:
            return

        async def later() -> None:
            await self._clock.sleep(delay)
            self._timers.pop(name, None)
            self.mark([name])

        self._timers[name] = supervisor.start(later(), f"wake/{name}")

    # -- work --------------------------------------------------------------------------
    async def _worker(self) -> None:
        while True:
            name = self._next()
            if name is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            self._busy.add(name)
            try:
                await self.reconcile(name)
            except Conflict:
                self.mark([name])  # someone wrote in between: go again with fresh state
            except Exception:
                log.exception("reconciling service %s failed", name)
                self._wake_at(name, self._clock.now())  # retried by the timer / resync
            finally:
                self._busy.discard(name)
                if self._dirty:
                    self._wake.set()

    def _next(self) -> str | None:
        """The next dirty service no worker holds. DAEMON services go first, and no
        REPLICA service is worked on while a DAEMON one is pending: a node that joins
        gets its daemon tasks (log routers, monitoring) before anything else fills it."""
        daemons_pending = False
        for name in self._dirty:
            if name in self._daemons:
                if name not in self._busy:
                    self._dirty.discard(name)
                    return name
                daemons_pending = True
        if daemons_pending or self._busy & self._daemons:
            return None
        for name in self._dirty:
            if name not in self._busy:
                self._dirty.discard(name)
                return name
        return None

    async def reconcile(self, name: str) -> None:
        """One pass over one service."""
        self.passes += 1
        service = await self._store.get_service(name)
        if service is None:
            self._daemons.discard(name)
            return
        if service.scheduling_strategy == SchedulingStrategy.DAEMON:
            self._daemons.add(name)
        tasks = await self._store.service_tasks(service.group, service.tasks_seen_until)
        nodes = await self._store.list_nodes()
        constraints = self._constraints(service)
        result = plan(
            PlanInput(
                service=service,
                tasks=tasks,
                health_checked=await self._health_flags(service),
                nodes=await self._node_infos(service, nodes, constraints),
                now=self._clock.now(),
            )
        )
        if result.service.model_dump() != service.model_dump():
            service = await self._store.update_service(result.service)
        events = list(result.events)
        stopped = await self._stop(result.stops)
        if stopped:
            events.append(
                f"(service {name}) has stopped {len(stopped)} running tasks: "
                + " ".join(f"(task {t})" for t in stopped)
                + "."
            )
        started, unplaced = await self._launch(service, result.launches, constraints)
        started_now, waiting = await self._place_waiting(service, tasks, constraints)
        started += started_now
        if started:
            events.append(
                f"(service {name}) has started {len(started)} tasks: "
                + " ".join(f"(task {t})" for t in started)
                + "."
            )
        unplaced += waiting
        if any(t.last_status == LastStatus.PROVISIONING for t in tasks) or unplaced:
            self._starved.add(name)
        else:
            self._starved.discard(name)
        if unplaced:
            events.append(
                f"(service {name}) was unable to place a task because no node met all of "
                f"its requirements. Reason: {unplaced[0]}"
            )
        if events:
            await self._events(name, events)
        if result.deletable:
            with contextlib.suppress(NotFound):
                await self._store.delete_service(name)
            # its autoscaling goes with it: a new service of that name starts clean
            with contextlib.suppress(NotFound):
                await self._store.delete_scalable_target(name)
            return
        if result.wake_at is not None:
            self._wake_at(name, result.wake_at)

    async def _stop(self, stops: list[Stop]) -> list[str]:
        done = []
        for stop in stops:
            try:
                await self._tasks.stop(
                    stop.task_id, stop.reason, StopCode.SERVICE_SCHEDULER_INITIATED
                )
            except NotFound:
                continue
            done.append(stop.task_id[:12])
        return done

    async def _launch(
        self, service: Service, launches: list[Launch], constraints: tuple[Constraint, ...]
    ) -> tuple[list[str], list[str]]:
        """(short ids of tasks placed on a node, reasons of those left waiting)."""
        placed: list[str] = []
        waiting: list[str] = []
        strategies = self._strategies(service)
        for launch in launches:
            if launch.count <= 0:
                continue
            deployment = next(d for d in service.deployments if d.id == launch.deployment_id)
            try:
                created, reasons = await self._tasks.launch_for_service(
                    ServiceLaunch(
                        task_definition=deployment.task_definition,
                        count=launch.count,
                        started_by=deployment.id,
                        group=service.group,
                        constraints=constraints,
                        strategies=strategies,
                        node_id=launch.node_id,
                    )
                )
            except HatobaError as exc:
                waiting.append(str(exc))
                continue
            waiting.extend(reasons)
            placed.extend(t.task_id[:12] for t in created if t.node_id is not None)
        return placed, waiting

    async def _place_waiting(
        self, service: Service, tasks: list[Task], constraints: tuple[Constraint, ...]
    ) -> tuple[list[str], list[str]]:
        placed: list[str] = []
        waiting: list[str] = []
        if (
            service.status != ServiceStatus.ACTIVE
            or service.scheduling_strategy == SchedulingStrategy.DAEMON  # pinned: never waits
        ):
            return placed, waiting
        strategies = self._strategies(service)
        for task in tasks:
            if task.node_id is not None or task.last_status != LastStatus.PROVISIONING:
                continue
            try:
                after = await self._tasks.place_waiting(task, constraints, strategies)
            except (NotFound, Conflict):
                continue
            if after.node_id is not None:
                placed.append(after.task_id[:12])
            elif after.pending_reason != task.pending_reason:
                waiting.append(after.pending_reason or "no node")
        return placed, waiting

    async def _events(self, name: str, messages: list[str]) -> None:
        now = self._clock.now()
        await self._store.append_service_events(
            [ServiceEvent(service_name=name, created_at=now, message=m) for m in messages]
        )

    # -- inputs ------------------------------------------------------------------------
    @staticmethod
    def _constraints(service: Service) -> tuple[Constraint, ...]:
        return parse_constraints(service.placement_constraints)

    @staticmethod
    def _strategies(service: Service) -> tuple[Strategy, ...]:
        return parse_strategies(service.placement_strategy)

    async def _health_flags(self, service: Service) -> dict[str, bool]:
        out = {}
        for d in service.deployments:
            arn = d.task_definition
            if arn not in self._health_checked:
                family, _, revision = arn.rpartition(":")
                td = await self._store.get_task_definition(family, int(revision))
                if td is None:
                    continue
                self._health_checked[arn] = any(
                    c.essential and c.health_check is not None for c in td.container_definitions
                )
            out[arn] = self._health_checked[arn]
        return out

    async def _node_infos(
        self, service: Service, nodes: list[Node], constraints: tuple[Constraint, ...]
    ) -> list[NodeInfo]:
        member_of = [c for c in constraints if isinstance(c, MemberOf)]
        non_daemon: dict[str, int] = {}
        if service.scheduling_strategy == SchedulingStrategy.DAEMON:
            daemons = {
                s.group
                for s in await self._store.list_services()
                if s.scheduling_strategy == SchedulingStrategy.DAEMON
            }
            for node_id, load in (await self._store.node_load()).items():
                non_daemon[node_id] = sum(
                    n for group, n in load.groups.items() if group not in daemons
                )
        out = []
        for node in nodes:
            view = NodeView(node_id=node.node_id, attributes=node.attributes)
            out.append(
                NodeInfo(
                    node_id=node.node_id,
                    status=node.status,
                    eligible=all(c.holds(view) for c in member_of),
                    non_daemon_tasks=non_daemon.get(node.node_id, 0),
                )
            )
        return out
