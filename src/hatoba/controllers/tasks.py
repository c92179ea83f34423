"""RunTask, StopTask, DescribeTasks: the control-plane side of one-off tasks.

RunTask validates the request, places each task with the pure scheduler and records it as
PENDING on its node; the node's agent takes it from there. Placement failures come back
structured (``RESOURCE:MEMORY`` ...) instead of as errors, as ECS does, so callers can retry.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from hatoba.controllers.refs import parse_taskdef_ref
from hatoba.controllers.task_updates import mutate_task
from hatoba.model.clock import Clock
from hatoba.model.errors import Conflict, FieldError, NotFound, ValidationFailed
from hatoba.model.node import Node, NodeStatus
from hatoba.model.task import (
    Container,
    DesiredStatus,
    LastStatus,
    StopCode,
    Task,
    TaskOverride,
)
from hatoba.model.taskdef import TaskDefinition, TaskDefinitionStatus
from hatoba.model.taskdef_overrides import apply_overrides, reserved_resources, shrinks
from hatoba.scheduler.constraints import Constraint, parse_constraints
from hatoba.scheduler.placement import Demand, NodeCapacity, place_many
from hatoba.scheduler.strategies import DEFAULT_STRATEGIES, Strategy, parse_strategies
from hatoba.store.protocol import NodeLoad, Store


@dataclass(frozen=True)
class RunTaskRequest:
    task_definition: str
    count: int = 1
    overrides: TaskOverride = field(default_factory=TaskOverride)
    started_by: str | None = None
    group: str | None = None
    timeout_seconds: float | None = None
    allow_shrink: bool = False
    # ECS-shaped: [{"type": "memberOf", "expression": ...}], [{"type": "spread", "field": ...}]
    placement_constraints: Sequence[Mapping[str, object]] = ()
    placement_strategy: Sequence[Mapping[str, object]] = ()


@dataclass(frozen=True)
class ServiceLaunch:
    """Tasks for one service deployment: ``node_id`` pins them to a node (DAEMON)."""

    task_definition: str  # "family:revision"
    count: int
    started_by: str  # the deployment id
    group: str  # "service:NAME"
    constraints: tuple[Constraint, ...] = ()
    strategies: tuple[Strategy, ...] = DEFAULT_STRATEGIES
    node_id: str | None = None


@dataclass(frozen=True)
class Failure:
    arn: str
    reason: str
    detail: str


@dataclass(frozen=True)
class RunTaskResult:
    tasks: list[Task]
    failures: list[Failure]


def new_task_id() -> str:
    return secrets.token_hex(16)


@dataclass(frozen=True)
class _Placement:
    constraints: tuple[Constraint, ...] = ()
    strategies: tuple[Strategy, ...] = DEFAULT_STRATEGIES


def _validate_request(req: RunTaskRequest) -> tuple[list[FieldError], _Placement]:
    """Every problem with ``req`` at once, and its parsed placement options."""
    errors = []
    constraints: tuple[Constraint, ...] = ()
    strategies: tuple[Strategy, ...] = DEFAULT_STRATEGIES
    try:
        constraints = parse_constraints(req.placement_constraints)
    except ValidationFailed as exc:
        errors.extend(exc.errors)
    try:
        strategies = parse_strategies(req.placement_strategy)
    except ValidationFailed as exc:
        errors.extend(exc.errors)
    if not 1 <= req.count <= 100:
        errors.append(FieldError("count", "must be between 1 and 100"))
    if req.timeout_seconds is not None and req.timeout_seconds <= 0:
        errors.append(FieldError("timeoutSeconds", "must be > 0"))
    if req.started_by is not None and len(req.started_by) > 128:
        errors.append(FieldError("startedBy", "must be at most 128 characters"))
    return errors, _Placement(constraints, strategies)


def node_capacity(node: Node, load: Mapping[str, NodeLoad]) -> NodeCapacity:
    used = load.get(node.node_id) or NodeLoad()
    return NodeCapacity(
        node_id=node.node_id,
        cpu=node.cpu,
        memory=node.memory,
        used_cpu=used.cpu,
        used_memory=used.memory,
        accepting=node.status == NodeStatus.ACTIVE,
        attributes=node.attributes,
        group_counts=used.groups,
    )


class Tasks:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        cluster: str = "default",
        on_placed: Callable[[Task], None] | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._cluster = cluster
        # tells an agent in this process about a new task without a round trip through
        # the change feed; other agents learn from the feed as usual
        self._on_placed = on_placed
        self._placement_lock = asyncio.Lock()

    async def run(self, req: RunTaskRequest) -> RunTaskResult:
        errors, placement = _validate_request(req)
        family, revision = parse_taskdef_ref(req.task_definition)
        async with self._placement_lock:
            # the task definition, nodes and reservations in one store call: each call is a
            # hop to the store's thread and back, the larger part of a small read's cost
            td, nodes, load = await self._store.placement_inputs(family, revision)
            if td is None:
                raise NotFound(f"task definition {req.task_definition} not found")
            return await self._place(req, td, nodes, load, errors, placement)

    async def _place(
        self,
        req: RunTaskRequest,
        td: TaskDefinition,
        nodes: list[Node],
        load: Mapping[str, NodeLoad],
        errors: list[FieldError],
        placement: _Placement,
    ) -> RunTaskResult:
        """Validate against ``td`` and place; the caller holds the placement lock, so
        ``load`` stays true until the tasks placed here are created."""
        if td.status != TaskDefinitionStatus.ACTIVE:
            errors.append(
                FieldError("taskDefinition", f"{td.arn} is {td.status.value}; it cannot run")
            )
        try:
            apply_overrides(td, req.overrides)
        except ValidationFailed as exc:
            errors.extend(exc.errors)
        else:
            if not req.allow_shrink:
                errors.extend(
                    FieldError(e.path, f"{e.message}; set allowShrink (--allow-shrink) to confirm")
                    for e in shrinks(td, req.overrides)
                )
        if errors:
            raise ValidationFailed(errors, subject="RunTask request")

        cpu, memory = reserved_resources(td, req.overrides)
        placements = place_many(
            Demand(
                cpu=cpu,
                memory=memory,
                constraints=placement.constraints,
                group=self._group(req, td),
            ),
            req.count,
            [node_capacity(n, load) for n in nodes],
            placement.strategies,
        )
        tasks: list[Task] = []
        failures: list[Failure] = []
        for p in placements:
            if p.node_id is None:
                failures.append(Failure(td.arn, p.reason, p.summary()))
                continue
            task = await self._store.create_task(self._new_task(td, req, p.node_id, cpu, memory))
            tasks.append(task)
            if self._on_placed is not None:
                self._on_placed(task)
        return RunTaskResult(tasks, failures)

    @staticmethod
    def _group(req: RunTaskRequest, td: TaskDefinition) -> str:
        return req.group or f"family:{td.family}"

    def _new_task(
        self, td: TaskDefinition, req: RunTaskRequest, node_id: str | None, cpu: int, memory: int
    ) -> Task:
        containers = [
            Container(
                name=c.name,
                essential=c.essential,
                cpu=c.cpu,
                memory=c.memory,
                memory_reservation=c.memory_reservation,
            )
            for c in apply_overrides(td, req.overrides)
        ]
        return Task(
            task_id=new_task_id(),
            task_definition_arn=td.arn,
            cluster=self._cluster,
            node_id=node_id,
            last_status=LastStatus.PENDING,
            containers=containers,
            cpu=cpu,
            memory=memory,
            overrides=req.overrides,
            started_by=req.started_by,
            group=self._group(req, td),
            timeout_seconds=req.timeout_seconds,
            created_at=self._clock.now(),
        )

    async def launch_for_service(self, req: ServiceLaunch) -> tuple[list[Task], list[str]]:
        """Create ``req.count`` tasks of a service deployment, placed where they fit, and
        the reasons for those that fit nowhere. Unpinned ones that fit nowhere are still
        created, as PROVISIONING without a node and with the placement's reason in
        ``pendingReason``; ``place_waiting`` places them later. Pinned ones (a DAEMON's,
        ``req.node_id``) are not: the service scheduler tries that node again itself."""
        family, revision = parse_taskdef_ref(req.task_definition)
        async with self._placement_lock:
            td, nodes, load = await self._store.placement_inputs(family, revision)
            if td is None:
                raise NotFound(f"task definition {req.task_definition} not found")
            cpu, memory = reserved_resources(td, TaskOverride())
            demand = Demand(cpu=cpu, memory=memory, constraints=req.constraints, group=req.group)
            capacities = [node_capacity(n, load) for n in nodes]
            if req.node_id is not None:
                capacities = [c for c in capacities if c.node_id == req.node_id]
            placements = place_many(demand, req.count, capacities, req.strategies)
            run = RunTaskRequest(task_definition=td.arn, started_by=req.started_by, group=req.group)
            out: list[Task] = []
            reasons: list[str] = []
            for p in placements:
                if p.node_id is None:
                    reasons.append(p.summary())
                    if req.node_id is not None:
                        continue
                task = self._new_task(td, run, p.node_id, cpu, memory)
                if p.node_id is None:
                    task.last_status = LastStatus.PROVISIONING
                    task.pending_reason = p.summary()
                task = await self._store.create_task(task)
                out.append(task)
                if p.node_id is not None and self._on_placed is not None:
                    self._on_placed(task)
            return out, reasons

    async def place_waiting(
        self, task: Task, constraints: tuple[Constraint, ...], strategies: tuple[Strategy, ...]
    ) -> Task:
        """Try again to place a PROVISIONING task that found no node; returns it placed
        (PENDING on a node) or with its reason brought up to date."""
        family, revision = parse_taskdef_ref(task.task_definition_arn)
        async with self._placement_lock:
            _, nodes, load = await self._store.placement_inputs(family, revision)
            demand = Demand(
                cpu=task.cpu, memory=task.memory, constraints=constraints, group=task.group
            )
            p = place_many(demand, 1, [node_capacity(n, load) for n in nodes], strategies)[0]

            def change(t: Task) -> Task | None:
                if t.node_id is not None or t.last_status != LastStatus.PROVISIONING:
                    return None
                if t.desired_status == DesiredStatus.STOPPED:
                    return None
                if p.node_id is None:
                    if t.pending_reason == p.summary():
                        return None
                    t.pending_reason = p.summary()
                    return t
                t.node_id = p.node_id
                t.last_status = LastStatus.PENDING
                t.pending_reason = None
                return t

            placed = await mutate_task(self._store, task.task_id, change, current=task)
        if placed.node_id is not None and task.node_id is None and self._on_placed is not None:
            self._on_placed(placed)
        return placed

    async def resolve(self, ref: str) -> Task:
        """A task by id or unique id prefix (at least 4 characters)."""
        task = await self._store.get_task(ref)
        if task is not None:
            return task
        if len(ref) >= 4:
            found = await self._store.find_tasks_by_prefix(ref, limit=2)
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise Conflict(f"task id prefix {ref!r} is ambiguous")
        raise NotFound(f"task {ref} not found")

    async def stop(
        self,
        ref: str,
        reason: str | None = None,
        stop_code: StopCode = StopCode.USER_INITIATED,
    ) -> Task:
        task = await self.resolve(ref)
        now = self._clock.now()

        def change(t: Task) -> Task | None:
            if t.desired_status == DesiredStatus.STOPPED:
                return None
            t.desired_status = DesiredStatus.STOPPED
            t.stop_code = stop_code
            t.stopped_reason = reason or "Task stopped by user"
            t.stopping_at = t.stopping_at or now
            if t.node_id is None and t.last_status == LastStatus.PROVISIONING:
                # never placed: no agent will ever see it, and nothing runs
                t.last_status = LastStatus.STOPPED
                t.execution_stopped_at = t.stopped_at = now
                t.pending_reason = None
            return t

        return await mutate_task(self._store, task.task_id, change, current=task)

    async def list_tasks(
        self,
        *,
        family: str | None = None,
        desired_status: DesiredStatus | None = None,
        started_by: str | None = None,
        limit: int | None = None,
    ) -> list[Task]:
        return await self._store.list_tasks(
            family=family, desired_status=desired_status, started_by=started_by, limit=limit
        )

    async def wait_for(self, ref: str, status: LastStatus, timeout: float) -> Task:
        """Return once the task's lastStatus has reached ``status`` (or passed it), or at
        ``timeout`` with the task as it is.

        Follows the change feed from just before the first read: a change this process
        made arrives with the task as committed (no read); any other change to the task
        (another process's write, seen by the store's poll) is read back."""
        seq = self._store.known_change_seq()  # before the read: no later change is missed
        task = await self.resolve(ref)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while task.last_status.rank < status.rank:
            left = deadline - loop.time()
            if left <= 0:
                break
            newest = await self._store.wait_for_change(seq, min(left, 1.0))
            if newest <= seq:
                continue
            changes = await self._store.changes_since(seq)
            seq = changes[-1].seq if changes else newest
            ours = None
            for change in changes:
                if change.kind == "task" and change.key == task.task_id:
                    ours = change
            if ours is None:
                continue
            if isinstance(ours.value, Task):
                task = ours.value
                continue
            fresh = await self._store.get_task(task.task_id)
            if fresh is None:
                raise NotFound(f"task {ref} not found")
            task = fresh
        return task

    async def purge_stopped(self, retention: timedelta) -> list[str]:
        return await self._store.delete_stopped_tasks(self._clock.now() - retention)
