"""The scaling loop: polls every policy's metric and sets each scalable service's count.

Only the control plane holding the ``scaling`` lease acts (the service scheduler's pattern).
While it leads, it keeps one ``Poller`` per policy metric (opened, replaced and closed as
policies change) and evaluates every target each ``tick`` and whenever a metric arrives:
scheduled actions first (they set min/max, compare-and-set on the target), then the pure
decision (``scaling_math.evaluate``) over the latest readings, applied with
``Services.scale`` (a count change, never a deployment). Every change of the count is an
activity; a metric that cannot be read writes one service event per error streak and keeps
the count. Time comes from the injected clock, pollers included.

The decision state (recommendation history, step cooldowns, scale-to-zero timers) lives in
memory: a new leader starts afresh, which only delays scale-in by one stabilization window.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from hatoba.controllers.leadership import LeaderLease, Role
from hatoba.controllers.scaling import MetricStatus
from hatoba.controllers.scaling_math import (
    Decision,
    Inputs,
    Reading,
    ScalingState,
    apply_actions,
    due_actions,
    evaluate,
)
from hatoba.controllers.services import Services
from hatoba.model.clock import Clock
from hatoba.model.errors import Conflict, HatobaError, NotFound, ValidationFailed
from hatoba.model.scaling import (
    ActivityStatus,
    ScalableTarget,
    ScalingActivity,
    ScalingPolicy,
    ScheduledAction,
)
from hatoba.model.schedule import Schedule, parse_schedule
from hatoba.model.service import (
    DeploymentStatus,
    RolloutState,
    SchedulingStrategy,
    Service,
    ServiceEvent,
    ServiceStatus,
)
from hatoba.model.task import LastStatus, Task
from hatoba.scalers import (
    MetricSource,
    MetricSpec,
    Poller,
    ProcessTaskStats,
    TaskStatsProvider,
    open_source,
    parse_metric_spec,
)
from hatoba.store.protocol import Store
from hatoba.supervise import Supervisor

log = logging.getLogger("hatoba.scaling")
LEASE = "scaling"
ROLE = Role(LEASE, "autoscaling", "scaling", log)
TASK_STATS_KINDS = frozenset({"cpu", "memory"})
TaskProcess = tuple[int, int | None, int | None]
SourceOpener = Callable[[MetricSpec, TaskStatsProvider | None], MetricSource]


@dataclass(frozen=True)
class ScalingSettings:
    lease_ttl: float = 15.0  # seconds a leader's lease lasts without renewal
    tick: float = 1.0  # seconds between evaluations when no metric arrives
    env: Mapping[str, str] | None = None  # resolves passwordFromEnv (default: os.environ)


@dataclass
class _Feed:
    """One policy's metric: its poller (None when the spec is invalid) and error streak."""

    key: str  # the metric spec as canonical JSON: a change replaces the poller
    kind: str | None
    poller: Poller | None
    task: asyncio.Task[None] | None
    invalid: str | None = None
    reported: bool = False  # the current error streak has its event

    def reading(self) -> Reading:
        if self.invalid is not None or self.poller is None:
            return Reading(error=self.invalid or "no metric source")
        error, latest = self.poller.error(), self.poller.latest()
        if error is not None:
            return Reading(error=error)
        return Reading() if latest is None else Reading(value=latest.value)

    def status(self) -> MetricStatus:
        latest = self.poller.latest() if self.poller is not None else None
        error = self.invalid or (self.poller.error() if self.poller is not None else None)
        return MetricStatus(
            value=latest.value if latest else None,
            at=latest.at if latest else None,
            error=error,
            kind=self.kind,
        )


def new_activity_id() -> str:
    return "hsa-" + secrets.token_hex(8)


def deploying(service: Service) -> bool:
    """A deployment is in progress: more than one deployment, or the PRIMARY's rollout."""
    live = [d for d in service.deployments if d.status != DeploymentStatus.INACTIVE]
    primary = service.primary
    return len(live) > 1 or (
        primary is not None and primary.rollout_state == RolloutState.IN_PROGRESS
    )


class ScalingLoop:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        services: Services,
        *,
        holder: str,
        settings: ScalingSettings | None = None,
        open_source: SourceOpener | None = None,
        node_id: str | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._services = services
        self.holder = holder
        self.settings = settings or ScalingSettings()
        self._open = open_source or self._open_source
        self._node_id = node_id  # cpu/memory: only tasks on this node are measured
        self._feeds: dict[tuple[str, str], _Feed] = {}
        self._states: dict[str, ScalingState] = {}
        self._decisions: dict[str, Decision] = {}
        self._failed: dict[str, tuple[int, int, str]] = {}  # the last failed scale, once
        self._procs: dict[str, list[TaskProcess]] = {}
        self._schedules: dict[tuple[str, str], Schedule | None] = {}
        self._wake = asyncio.Event()
        self._lease = LeaderLease(store, clock, ROLE, holder, self.settings.lease_ttl)
        self.is_leader = self._lease.is_leader
        self.passes_started = 0  # evaluation passes begun ...
        self.passes = 0  # ... and done (for tests and metrics)

    # -- what describe and watch read ----------------------------------------------------
    def metric_status(self, service: str) -> dict[str, MetricStatus]:
        return {p: f.status() for (s, p), f in self._feeds.items() if s == service}

    def last_decision(self, service: str) -> Decision | None:
        return self._decisions.get(service)

    # -- leadership ----------------------------------------------------------------------
    async def run(self) -> None:
        """Run until cancelled: campaign for the lease; while holding it, scale."""
        await self._lease.run(self._lead, self._stopped)

    def _lead(self, supervisor: Supervisor) -> None:
        supervisor.start(self._evaluate_forever(), "evaluate")

    async def _stopped(self) -> None:
        feeds, self._feeds = self._feeds, {}
        for feed in feeds.values():
            if feed.poller is not None:
                await feed.poller.close()
        self._states.clear()
        self._decisions.clear()

    async def _evaluate_forever(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.evaluate_all()
            except Exception:
                log.exception("autoscaling pass failed")
            sleeper = asyncio.ensure_future(self._clock.sleep(self.settings.tick))
            waker = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for f in (sleeper, waker):
                    f.cancel()

    # -- one pass ------------------------------------------------------------------------
    async def evaluate_all(self) -> None:
        """Every scalable target once: read config, sync pollers, decide, apply."""
        self.passes_started += 1
        targets = await self._store.list_scalable_targets()
        policies: dict[str, list[ScalingPolicy]] = {}
        for p in await self._store.list_scaling_policies():
            policies.setdefault(p.service_name, []).append(p)
        actions: dict[str, list[ScheduledAction]] = {}
        for a in await self._store.list_scheduled_actions():
            actions.setdefault(a.service_name, []).append(a)
        await self._sync_feeds({t.service_name for t in targets}, policies)
        for name in [n for n in self._states if n not in {t.service_name for t in targets}]:
            self._states.pop(name, None)
            self._decisions.pop(name, None)
        for target in targets:
            name = target.service_name
            try:
                await self._evaluate(target, policies.get(name, []), actions.get(name, []))
            except (Conflict, NotFound):
                continue  # someone wrote in between: the next pass sees it
            except Exception:
                log.exception("autoscaling service %s failed", name)
        self.passes += 1

    async def _evaluate(
        self,
        target: ScalableTarget,
        policies: Sequence[ScalingPolicy],
        actions: Sequence[ScheduledAction],
    ) -> None:
        name = target.service_name
        service = await self._store.get_service(name)
        if (
            service is None
            or service.status != ServiceStatus.ACTIVE
            or service.scheduling_strategy == SchedulingStrategy.DAEMON
        ):
            return
        now = self._clock.now()
        target = await self._run_scheduled(target, actions, service, now)
        feeds = {p.policy_name: self._feeds.get((name, p.policy_name)) for p in policies}
        if any(f is not None and f.kind in TASK_STATS_KINDS for f in feeds.values()):
            self._procs[name] = await self._task_processes(service)
        readings = {p: f.reading() if f else Reading() for p, f in feeds.items()}
        await self._report_errors(service, feeds)
        state = self._states.get(name, ScalingState())
        inp = Inputs(target, policies, readings, service.desired_count, now, deploying(service))
        decision, new_state = evaluate(inp, state)
        self._decisions[name] = decision
        if decision.changed:
            status, message = ActivityStatus.SUCCESSFUL, None
            try:
                await self._services.scale(name, decision.desired)
                self._failed.pop(name, None)
            except HatobaError as exc:
                status, message = ActivityStatus.FAILED, str(exc)
                # not applied: the cooldowns and timers stay as they were
                new_state = replace(new_state, scaled_at=state.scaled_at, cooldowns=state.cooldowns)
            if status == ActivityStatus.SUCCESSFUL or self._failed.get(name) != (
                decision.current,
                decision.desired,
                message or "",
            ):
                if message is not None:
                    self._failed[name] = (decision.current, decision.desired, message)
                await self._activity(
                    name,
                    now,
                    decision.current,
                    decision.desired,
                    decision.reason,
                    policy=decision.policy,
                    metric=decision.metric_value,
                    status=status,
                    message=message,
                )
        self._states[name] = new_state

    # -- scheduled actions ---------------------------------------------------------------
    async def _run_scheduled(
        self,
        target: ScalableTarget,
        actions: Sequence[ScheduledAction],
        service: Service,
        now: datetime,
    ) -> ScalableTarget:
        due = due_actions(actions, target.scheduled_fired, now, self._next_fire)
        if not due:
            return target
        if target.suspended_state.scheduled_scaling_suspended:  # skipped, not postponed
            fired = dict(target.scheduled_fired) | {
                f.action.scheduled_action_name: f.at for f in due
            }
            updated = target.model_copy(update={"scheduled_fired": fired})
        else:
            updated = apply_actions(target, due)
        stored = await self._store.put_scalable_target(
            updated.model_copy(update={"updated_at": now})
        )
        if not target.suspended_state.scheduled_scaling_suspended:
            count = service.desired_count
            for f in due:
                a = f.action
                bounds = ", ".join(
                    f"{label} {v}"
                    for label, v in (
                        ("minCapacity", a.min_capacity),
                        ("maxCapacity", a.max_capacity),
                    )
                    if v is not None
                )
                reason = f"scheduled action {a.scheduled_action_name} ({a.schedule}) set {bounds}"
                await self._activity(
                    service.service_name, now, count, count, reason, policy=a.scheduled_action_name
                )
        return stored

    def _next_fire(self, action: ScheduledAction, after: datetime) -> datetime | None:
        key = (action.schedule, action.timezone)
        if key not in self._schedules:
            try:
                self._schedules[key] = parse_schedule(action.schedule, action.timezone)
            except ValidationFailed:
                self._schedules[key] = None
        schedule = self._schedules[key]
        return None if schedule is None else schedule.next_after(after)

    # -- metrics -------------------------------------------------------------------------
    async def _sync_feeds(
        self, services: set[str], policies: Mapping[str, Sequence[ScalingPolicy]]
    ) -> None:
        """One poller per policy of a service with a target; replaced when its metric
        changes, closed when the policy goes."""
        wanted: dict[tuple[str, str], tuple[ScalingPolicy, str]] = {}
        for name in services:
            for p in policies.get(name, []):
                wanted[(name, p.policy_name)] = (p, json.dumps(p.metric, sort_keys=True))
        for key in [k for k in self._feeds if wanted.get(k, (None, None))[1] != self._feeds[k].key]:
            await self._close_feed(self._feeds.pop(key))
        for key, (policy, spec_key) in wanted.items():
            if key not in self._feeds:
                self._feeds[key] = self._open_feed(key[0], policy, spec_key)

    def _open_feed(self, service: str, policy: ScalingPolicy, key: str) -> _Feed:
        try:
            spec = parse_metric_spec(policy.metric)
        except ValidationFailed as exc:
            return _Feed(key, None, None, None, invalid="; ".join(str(e) for e in exc.errors))
        stats = None
        if spec.kind in TASK_STATS_KINDS:
            stats = ProcessTaskStats(lambda: self._procs.get(service, []))
        poller = Poller(
            self._open(spec, stats),
            interval=spec.poll_interval,
            timeout=spec.timeout,
            clock=self._clock,
            on_update=lambda _: self._wake.set(),
        )
        task = None
        supervisor = self._lease.supervisor
        if supervisor is not None:
            task = supervisor.start(poller.run(), f"poll/{service}/{policy.policy_name}")
        return _Feed(key, spec.kind, poller, task)

    async def _close_feed(self, feed: _Feed) -> None:
        if feed.task is not None:
            feed.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await feed.task
        if feed.poller is not None:
            await feed.poller.close()

    def _open_source(self, spec: MetricSpec, stats: TaskStatsProvider | None) -> MetricSource:
        return open_source(spec, task_stats=stats, env=self.settings.env, now=self._clock.now)

    async def _report_errors(self, service: Service, feeds: Mapping[str, _Feed | None]) -> None:
        """One event per error streak of each policy's metric."""
        events = []
        for policy, feed in sorted(feeds.items()):
            if feed is None:
                continue
            error = feed.reading().error
            if error is None:
                if feed.poller is not None and feed.poller.latest() is not None:
                    feed.reported = False
                continue
            if feed.reported:
                continue
            feed.reported = True
            events.append(
                f"(service {service.service_name}) scaling policy {policy} cannot read its "
                f"metric: {error}. Scale-in and scale to 0 wait until it can."
            )
        if events:
            now = self._clock.now()
            await self._store.append_service_events(
                [
                    ServiceEvent(service_name=service.service_name, created_at=now, message=m)
                    for m in events
                ]
            )

    async def _task_processes(self, service: Service) -> list[TaskProcess]:
        """(pid, cpu units, MiB) of each RUNNING task of the service on this node."""
        tasks = await self._store.list_tasks(
            group=service.group, last_statuses=[LastStatus.RUNNING]
        )
        out = []
        for t in tasks:
            if self._node_id is not None and t.node_id != self._node_id:
                continue
            pid = _main_pid(t)
            if pid is not None:
                out.append((pid, t.cpu or None, t.memory or None))
        return out

    async def _activity(
        self,
        service: str,
        at: datetime,
        from_count: int,
        to_count: int,
        reason: str,
        *,
        policy: str | None = None,
        metric: float | None = None,
        status: ActivityStatus = ActivityStatus.SUCCESSFUL,
        message: str | None = None,
    ) -> None:
        await self._store.append_scaling_activities(
            [
                ScalingActivity(
                    activity_id=new_activity_id(),
                    service_name=service,
                    at=at,
                    policy_name=policy,
                    metric_value=metric,
                    from_count=from_count,
                    to_count=to_count,
                    reason=reason,
                    status=status,
                    status_message=message,
                )
            ]
        )


def _main_pid(task: Task) -> int | None:
    for c in sorted(task.containers, key=lambda c: not c.essential):
        if c.pid is not None:
            return c.pid
    return None
