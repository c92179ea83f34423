"""The service controller's decision, as a pure function: given a service, its tasks, the
nodes and the time, what to launch, what to stop, and the service's new bookkeeping.

No I/O, no asyncio, no store: the controller loop reads state, calls :func:`plan`, applies
the :class:`Plan` (records launches, asks for stops, writes the service when it changed,
appends the events) and calls again when anything changes or at ``wake_at``.

The steps, in order (ECS's semantics throughout):

1. account newly STOPPED tasks once (a watermark on the service): failures feed the
   deployment circuit breaker, crashes (failed before 30 s of running) the launch throttle;
2. the circuit breaker fails the PRIMARY deployment, and rolls back when asked to;
3. tasks failing their health checks (past the grace period) are stopped;
4. REPLICA or 5. DAEMON: scale in, launch for the PRIMARY within ``maximumPercent``, stop
   old tasks keeping ``minimumHealthyPercent`` healthy (see ``service_plan_steps``);
6. deployments' counts and rollout state (COMPLETED at a steady state);
7. a deleted (DRAINING) service with no task left is deletable.

Events are the planner's decisions (failures, throttling, circuit breaker, steady state);
"has started/stopped N tasks" are the caller's, which knows the tasks it started.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from hatoba.model.node import NodeStatus
from hatoba.model.service import (
    Deployment,
    DeploymentStatus,
    RolloutState,
    SchedulingStrategy,
    Service,
    ServiceStatus,
    circuit_breaker_threshold,
)
from hatoba.model.task import (
    DesiredStatus,
    HealthStatus,
    LastStatus,
    StopCode,
    Task,
)

CRASH_SECONDS = 30  # a failed task that ran less than this is a crash (throttled)
MAX_THROTTLE_SECONDS = 900
HEALTH_CHECK_REASON = "Task failed container health checks"
FAILURE_CODES = frozenset(
    {
        StopCode.TASK_FAILED_TO_START,
        StopCode.ESSENTIAL_CONTAINER_EXITED,
        StopCode.LOST,
        StopCode.TASK_TIMED_OUT,
    }
)
_PENDING = frozenset({LastStatus.PROVISIONING, LastStatus.PENDING, LastStatus.ACTIVATING})


def new_deployment_id() -> str:
    return "hd-" + secrets.token_hex(6)


@dataclass(frozen=True)
class NodeInfo:
    node_id: str
    status: NodeStatus
    eligible: bool  # satisfies the service's memberOf constraints (computed by the caller)
    non_daemon_tasks: int = 0  # live tasks on this node that are not tasks of a DAEMON service


@dataclass(frozen=True)
class PlanInput:
    service: Service
    # the service's tasks: all not STOPPED, plus STOPPED ones not yet accounted
    tasks: Sequence[Task]
    # "family:revision" -> the task definition has a health check on an essential container
    health_checked: Mapping[str, bool]
    # every node holding a task of the service (a task on a node not listed is stopped)
    # and, for a DAEMON service, every node of the cluster
    nodes: Sequence[NodeInfo]
    now: datetime
    new_id: Callable[[], str] = field(default=new_deployment_id)  # for a rollback deployment


@dataclass(frozen=True)
class Launch:
    deployment_id: str
    count: int
    node_id: str | None = None  # DAEMON: this node; REPLICA: None (the caller places)


@dataclass(frozen=True)
class Stop:
    task_id: str
    reason: str


@dataclass(frozen=True)
class Plan:
    service: Service  # a deep copy with bookkeeping updated (equal to the input if unchanged)
    launches: list[Launch]
    stops: list[Stop]
    events: list[str]  # "(service web) ..."
    wake_at: datetime | None  # re-evaluate then even if nothing changes
    deletable: bool = False  # DRAINING (deleted) and no task of it left


# -- task facts ---------------------------------------------------------------------------
def is_live(t: Task) -> bool:
    return t.last_status != LastStatus.STOPPED and t.desired_status == DesiredStatus.RUNNING


def is_stopping(t: Task) -> bool:
    return t.last_status != LastStatus.STOPPED and t.desired_status == DesiredStatus.STOPPED


def is_failure(t: Task) -> bool:
    if t.stop_code in FAILURE_CODES:
        return True
    return t.stop_code == StopCode.SERVICE_SCHEDULER_INITIATED and (
        t.stopped_reason or ""
    ).startswith(HEALTH_CHECK_REASON)


def stopped_time(t: Task) -> datetime:
    return t.stopped_at or t.execution_stopped_at or t.created_at


def started_time(t: Task) -> datetime:
    return t.started_at or t.created_at


def throttle_delay(n: int) -> int:
    """Seconds before the next launch after ``n`` consecutive crashes."""
    return 0 if n <= 1 else min(MAX_THROTTLE_SECONDS, 5 * 2 ** (n - 1))


def _count_into(target: Service | Deployment, tasks: Sequence[Task]) -> None:
    target.running_count = sum(1 for t in tasks if t.last_status == LastStatus.RUNNING)
    target.pending_count = sum(1 for t in tasks if t.last_status in _PENDING)


def counts(service: Service, tasks: Sequence[Task]) -> Service:
    """A copy with ``runningCount``/``pendingCount`` filled in for the service and each of
    its deployments (ECS counts live tasks only: RUNNING, and PROVISIONING to ACTIVATING)."""
    out = service.model_copy(deep=True)
    live = [t for t in tasks if t.group == service.group and is_live(t)]
    _count_into(out, live)
    for d in out.deployments:
        _count_into(d, [t for t in live if t.started_by == d.id])
    return out


# -- the working state of one plan --------------------------------------------------------
class Work:
    """Mutable state while planning: the copy being edited and what is decided so far."""

    def __init__(self, inp: PlanInput) -> None:
        self.inp = inp
        self.now = inp.now
        self.svc = inp.service.model_copy(deep=True)
        mine = [t for t in inp.tasks if t.group == self.svc.group]
        self.tasks = mine
        # live tasks not (yet) stopped by this plan, in a deterministic order
        self.live: dict[str, Task] = {
            t.task_id: t for t in sorted((t for t in mine if is_live(t)), key=_age_key)
        }
        self.stopping_nodes = {t.node_id for t in mine if is_stopping(t) and t.node_id}
        self.nodes = {n.node_id: n for n in inp.nodes}
        self.launches: list[Launch] = []
        self.stops: list[Stop] = []
        self.events: list[str] = []
        self.wakes: list[datetime] = []
        self.active = self.svc.status == ServiceStatus.ACTIVE

    def event(self, message: str) -> None:
        self.events.append(f"(service {self.svc.service_name}) {message}")

    def wake(self, at: datetime) -> None:
        if at > self.now:
            self.wakes.append(at)

    def stop(self, t: Task, reason: str) -> None:
        if self.live.pop(t.task_id, None) is not None:
            self.stops.append(Stop(t.task_id, reason))
            if t.node_id:
                self.stopping_nodes.add(t.node_id)

    def healthy(self, t: Task) -> bool:
        """RUNNING (and HEALTHY when health-checked) for at least the deployment
        configuration's ``minimumHealthyTimeSeconds``."""
        if t.task_id not in self.live or t.last_status != LastStatus.RUNNING:
            return False
        checked = self.inp.health_checked.get(t.task_definition_arn, False)
        if checked and t.health_status != HealthStatus.HEALTHY:
            return False
        settle = self.svc.deployment_configuration.minimum_healthy_time_seconds
        if settle and t.started_at is not None:
            ready_at = t.started_at + timedelta(seconds=settle)
            if ready_at > self.now:
                self.wake(ready_at)
                return False
        return True

    def healthy_count(self) -> int:
        return sum(1 for t in self.live.values() if self.healthy(t))

    @property
    def primary(self) -> Deployment | None:
        return self.svc.primary

    def is_primary(self, t: Task) -> bool:
        p = self.primary
        return p is not None and t.started_by == p.id

    def frozen(self) -> bool:
        """No launches and no rollout stops: no PRIMARY, or it FAILED (no rollback)."""
        p = self.primary
        return p is None or p.rollout_state == RolloutState.FAILED

    def throttled(self) -> bool:
        """Launches wait for the throttle (``wake_at`` set to when they may go)."""
        at = self.svc.throttle.next_launch_at
        if at is not None and at > self.now:
            self.wake(at)
            return True
        return False

    def deployment_reason(self, t: Task) -> str:
        if self.is_primary(t):
            return f"Scaling activity initiated by (deployment {t.started_by})"
        return f"Service deployment replaced task (deployment {t.started_by})"

    def deployment_rank(self, t: Task) -> tuple[int, datetime]:
        """Older deployments first; tasks of deployments no longer listed before all."""
        for d in self.svc.deployments:
            if d.id == t.started_by:
                return (1 if d.status != DeploymentStatus.PRIMARY else 2, d.created_at)
        return (0, t.created_at)


def _age_key(t: Task) -> tuple[datetime, str]:
    return (started_time(t), t.task_id)


# -- 1. accounting STOPPED tasks, and the launch throttle -------------------------------------
def account_stopped(w: Work) -> None:
    svc = w.svc
    until, seen = svc.tasks_seen_until, set(svc.tasks_seen_ids)

    def is_new(t: Task) -> bool:
        at = stopped_time(t)
        if until is None or at > until:
            return True
        return at == until and t.task_id not in seen

    fresh = sorted(
        (t for t in w.tasks if t.last_status == LastStatus.STOPPED and is_new(t)),
        key=lambda t: (stopped_time(t), t.task_id),
    )
    if not fresh:
        return
    last = stopped_time(fresh[-1])
    at_last = sorted(t.task_id for t in fresh if stopped_time(t) == last)
    svc.tasks_seen_ids = sorted(seen | set(at_last)) if last == until else at_last
    svc.tasks_seen_until = last
    deployments = {d.id: d for d in svc.deployments}
    crashes = 0
    for t in fresh:
        if not is_failure(t):
            continue
        d = deployments.get(t.started_by or "")
        if d is not None and d.rollout_state == RolloutState.IN_PROGRESS:
            d.failed_tasks += 1
        w.event(f"task {t.task_id[:12]} stopped: {t.stopped_reason or t.stop_code}")
        ran = None if t.started_at is None else stopped_time(t) - t.started_at
        if ran is None or ran < timedelta(seconds=CRASH_SECONDS):
            crashes += 1
    if crashes:
        n = svc.throttle.consecutive_failures + crashes
        delay = throttle_delay(n)
        svc.throttle.consecutive_failures = n
        svc.throttle.next_launch_at = w.now + timedelta(seconds=delay)
        if n >= 2:
            w.event(
                "is unable to consistently start tasks successfully: "
                f"{n} consecutive failures; next launch in {delay}s."
            )


def reset_throttle(w: Work) -> None:
    """Reset once a task launched since the last crash has run healthy for 30 s."""
    th = w.svc.throttle
    if th.consecutive_failures == 0:
        return
    since = None
    if th.next_launch_at is not None:  # when the last crash was accounted
        since = th.next_launch_at - timedelta(seconds=throttle_delay(th.consecutive_failures))
    proven = timedelta(seconds=CRASH_SECONDS)
    for t in w.live.values():
        if t.last_status != LastStatus.RUNNING or t.started_at is None:
            continue
        if since is not None and t.started_at < since:
            continue
        if w.now - t.started_at >= proven:
            if w.healthy(t):
                th.consecutive_failures = 0
                th.next_launch_at = None
                return
        else:
            w.wake(t.started_at + proven)


# -- 2. the deployment circuit breaker ------------------------------------------------------
def circuit_breaker(w: Work, desired: int) -> None:
    svc, p = w.svc, w.primary
    cb = svc.deployment_configuration.deployment_circuit_breaker
    if not (w.active and cb.enable and p is not None):
        return
    if p.rollout_state != RolloutState.IN_PROGRESS:
        return
    threshold = circuit_breaker_threshold(desired)
    if p.failed_tasks < threshold:
        return
    p.rollout_state = RolloutState.FAILED
    p.rollout_state_reason = (
        f"tasks failed to start: circuit breaker threshold of {threshold} reached"
    )
    p.updated_at = w.now
    w.event(f"deployment {p.id} failed: {p.rollout_state_reason}.")
    target = svc.completed_task_definition
    if not cb.rollback or target is None or p.rollback_of is not None:
        return  # nothing to roll back to (or this already is a rollback): stays FAILED
    p.status = DeploymentStatus.ACTIVE
    rollback = Deployment(
        id=w.inp.new_id(),
        status=DeploymentStatus.PRIMARY,
        task_definition=target,
        desired_count=desired,
        created_at=w.now,
        updated_at=w.now,
        rollback_of=p.id,
    )
    svc.deployments.insert(0, rollback)
    svc.task_definition = target
    svc.throttle.consecutive_failures = 0  # the crashes were the failed deployment's
    svc.throttle.next_launch_at = None
    w.event(f"rolling back to {target}")


# -- 3. failing health checks -------------------------------------------------------------
def stop_unhealthy(w: Work) -> None:
    grace = timedelta(seconds=w.svc.health_check_grace_period_seconds)
    for t in list(w.live.values()):
        if t.health_status != HealthStatus.UNHEALTHY:
            continue
        end = started_time(t) + grace
        if end <= w.now:
            w.stop(t, HEALTH_CHECK_REASON)
        else:
            w.wake(end)


# -- 6. deployments' counts and rollout state ------------------------------------------------
def progress(w: Work, desired: int, keep: Sequence[Task], blocking: int) -> None:
    svc, p = w.svc, w.primary
    live = list(w.live.values())
    by_dep = Counter(t.started_by for t in live)
    for d in svc.deployments:
        d.desired_count = desired if d is p else by_dep[d.id]
        _count_into(d, [t for t in live if t.started_by == d.id])
    _count_into(svc, live)
    others = sum(n for dep, n in by_dep.items() if p is None or dep != p.id)
    if (
        w.active
        and p is not None
        and p.rollout_state == RolloutState.IN_PROGRESS
        and len(keep) == desired
        and all(w.healthy(t) for t in keep)
        and blocking == 0
        and others == 0
    ):
        p.rollout_state = RolloutState.COMPLETED
        p.rollout_state_reason = f"ECS deployment {p.id} completed."
        svc.completed_task_definition = p.task_definition
        w.event("has reached a steady state.")
    svc.deployments = [d for d in svc.deployments if d is p or by_dep[d.id] > 0]
    before = {d.id: d.model_dump(exclude={"updated_at"}) for d in w.inp.service.deployments}
    for d in svc.deployments:
        if before.get(d.id) != d.model_dump(exclude={"updated_at"}):
            d.updated_at = w.now


# -- the plan -----------------------------------------------------------------------------
def plan(inp: PlanInput) -> Plan:
    # the steps module builds on this one's Work, hence the import here
    from hatoba.controllers.service_plan_steps import daemon_step, replica_step

    w = Work(inp)
    account_stopped(w)
    reset_throttle(w)
    daemon = w.svc.scheduling_strategy == SchedulingStrategy.DAEMON
    if daemon:
        desired = (
            sum(1 for n in inp.nodes if n.status == NodeStatus.ACTIVE and n.eligible)
            if w.active
            else 0
        )
        w.svc.desired_count = desired
    else:
        desired = w.svc.desired_count if w.active else 0
    circuit_breaker(w, desired)
    stop_unhealthy(w)
    keep, blocking = daemon_step(w, desired) if daemon else replica_step(w, desired)
    progress(w, desired, keep, blocking)
    deletable = (
        w.svc.status == ServiceStatus.DRAINING
        and not w.launches
        and all(t.last_status == LastStatus.STOPPED for t in w.tasks)
    )
    service = w.svc
    if service.model_dump() == inp.service.model_dump():
        service = inp.service.model_copy(deep=True)
    return Plan(
        service=service,
        launches=w.launches,
        stops=w.stops,
        events=w.events,
        wake_at=min(w.wakes) if w.wakes else None,
        deletable=deletable,
    )
