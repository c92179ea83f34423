"""The service controller's pure decision (``controllers.service_plan``): ECS's deployment
semantics, checked rule by rule, by simulating rollouts step by step, and over random
inputs (plain ``random`` with fixed seeds) for the maximumPercent/minimumHealthyPercent
invariants."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from hatoba.controllers.service_plan import (
    Launch,
    NodeInfo,
    Plan,
    PlanInput,
    counts,
    plan,
    throttle_delay,
)
from hatoba.model.node import NodeStatus
from hatoba.model.service import (
    CircuitBreaker,
    Deployment,
    DeploymentConfiguration,
    DeploymentStatus,
    RolloutState,
    SchedulingStrategy,
    Service,
    ServiceStatus,
    circuit_breaker_threshold,
    maximum_tasks,
    minimum_healthy_tasks,
)
from hatoba.model.task import DesiredStatus, HealthStatus, LastStatus, StopCode, Task

T0 = datetime(2026, 1, 1, tzinfo=UTC)
GROUP = "service:web"
PRIMARY, ACTIVE = DeploymentStatus.PRIMARY, DeploymentStatus.ACTIVE
RUNNING, PENDING, PROVISIONING = LastStatus.RUNNING, LastStatus.PENDING, LastStatus.PROVISIONING
HEALTHY, UNHEALTHY, UNKNOWN = HealthStatus.HEALTHY, HealthStatus.UNHEALTHY, HealthStatus.UNKNOWN


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# -- factories ----------------------------------------------------------------------------
def dep(
    id: str = "hd-new",
    td: str = "web:2",
    status: DeploymentStatus = PRIMARY,
    created: float = 0,
    state: RolloutState = RolloutState.IN_PROGRESS,
    failed: int = 0,
    rollback_of: str | None = None,
) -> Deployment:
    return Deployment(
        id=id,
        status=status,
        task_definition=td,
        rollout_state=state,
        failed_tasks=failed,
        created_at=at(created),
        updated_at=at(created),
        rollback_of=rollback_of,
    )


def svc(
    *deployments: Deployment,
    desired: int = 3,
    min_pct: int | None = None,
    max_pct: int | None = None,
    breaker: bool = False,
    rollback: bool = False,
    grace: int = 0,
    daemon: bool = False,
    status: ServiceStatus = ServiceStatus.ACTIVE,
    completed: str | None = "web:1",
    settle: int = 0,
) -> Service:
    deps = list(deployments) or [dep()]
    primary = next(d for d in deps if d.status == PRIMARY)
    return Service(
        service_name="web",
        status=status,
        task_definition=primary.task_definition,
        desired_count=desired,
        scheduling_strategy=SchedulingStrategy.DAEMON if daemon else SchedulingStrategy.REPLICA,
        deployment_configuration=DeploymentConfiguration(
            deployment_circuit_breaker=CircuitBreaker(enable=breaker, rollback=rollback),
            minimum_healthy_percent=min_pct,
            maximum_percent=max_pct,
            minimum_healthy_time_seconds=settle,
        ),
        health_check_grace_period_seconds=grace,
        deployments=deps,
        created_at=T0,
        updated_at=T0,
        completed_task_definition=completed,
    )


def task(
    id: str,
    deployment: str = "hd-new",
    status: LastStatus = RUNNING,
    node: str | None = "n1",
    td: str = "web:2",
    health: HealthStatus = HealthStatus.UNKNOWN,
    started: float | None = -100,
    created: float = -200,
    desired: DesiredStatus = DesiredStatus.RUNNING,
    stop_code: StopCode | None = None,
    reason: str | None = None,
    stopped: float | None = None,
) -> Task:
    if status in (PROVISIONING, PENDING):
        started = None
    return Task(
        task_id=id,
        task_definition_arn=td,
        node_id=None if status == PROVISIONING else node,
        desired_status=DesiredStatus.STOPPED if status == LastStatus.STOPPED else desired,
        last_status=status,
        health_status=health,
        stop_code=stop_code,
        stopped_reason=reason,
        started_by=deployment,
        group=GROUP,
        created_at=at(created),
        started_at=None if started is None else at(started),
        stopped_at=None if stopped is None else at(stopped),
    )


def crashed(id: str, when: float, ran: float = 2, deployment: str = "hd-new") -> Task:
    return task(
        id,
        deployment,
        LastStatus.STOPPED,
        started=when - ran,
        stopped=when,
        stop_code=StopCode.ESSENTIAL_CONTAINER_EXITED,
        reason="Essential container in task exited",
    )


def nodes(*ids: str, status: NodeStatus = NodeStatus.ACTIVE, eligible: bool = True):
    return [NodeInfo(n, status, eligible) for n in ids]


NODES = nodes("n1", "n2", "n3")


def run(
    service: Service,
    tasks: Iterable[Task] = (),
    now: float = 0,
    node_infos: list[NodeInfo] | None = None,
    hc: dict[str, bool] | None = None,
) -> Plan:
    ids = (f"hd-{i:012x}" for i in itertools.count(1))
    return plan(
        PlanInput(
            service=service,
            tasks=list(tasks),
            health_checked=hc or {},
            nodes=NODES if node_infos is None else node_infos,
            now=at(now),
            new_id=lambda: next(ids),
        )
    )


def launched(p: Plan) -> int:
    return sum(launch.count for launch in p.launches)


def stopped_ids(p: Plan) -> list[str]:
    return [s.task_id for s in p.stops]


# -- rounding and counts --------------------------------------------------------------------
def test_rounding_follows_ecs() -> None:
    assert minimum_healthy_tasks(3, 50) == 2  # rounds up
    assert maximum_tasks(3, 150) == 4  # rounds down
    assert circuit_breaker_threshold(1) == 3
    assert circuit_breaker_threshold(10) == 5
    assert circuit_breaker_threshold(1000) == 200


def test_rounding_drives_the_plan() -> None:
    # desired 3, 50/150: at most 4 live (one launch), at least 2 healthy (one stop)
    old = [task(f"old{i}", "hd-old", td="web:1", started=-100 + i) for i in range(3)]
    s = svc(dep(), dep("hd-old", "web:1", ACTIVE, created=-500), min_pct=50, max_pct=150)
    p = run(s, old)
    assert p.launches == [Launch("hd-new", 1)]
    assert stopped_ids(p) == ["old0"]  # the oldest
    assert p.stops[0].reason == "Service deployment replaced task (deployment hd-old)"


def test_counts_fill_service_and_deployments() -> None:
    s = svc(dep(), dep("hd-old", "web:1", ACTIVE, created=-500))
    tasks = [
        task("a"),
        task("b", status=PENDING),
        task("c", status=PROVISIONING),
        task("d", "hd-old", td="web:1"),
        task("e", desired=DesiredStatus.STOPPED),  # stopping: not counted
        task("f", status=LastStatus.STOPPED, stopped=-5),
    ]
    out = counts(s, tasks)
    assert (out.running_count, out.pending_count) == (2, 2)
    assert [(d.running_count, d.pending_count) for d in out.deployments] == [(1, 2), (1, 0)]
    assert s.running_count == 0  # a copy


# -- steady state, scaling --------------------------------------------------------------------
def test_fresh_service_launches_desired_and_nothing_changes_when_steady() -> None:
    p = run(svc(desired=3))
    assert p.launches == [Launch("hd-new", 3)]
    assert p.stops == [] and p.wake_at is None
    steady = svc(dep(state=RolloutState.COMPLETED), desired=2, completed="web:2")
    steady = counts(steady, [task("a"), task("b")])
    steady.deployments[0].desired_count = 2
    p = run(steady, [task("a"), task("b")])
    assert p.launches == [] and p.stops == [] and p.events == []
    assert p.service == steady


def test_scale_in_stops_pending_then_unhealthy_then_newest() -> None:
    tasks = [
        task("old-healthy", started=-300, health=HEALTHY),
        task("new-healthy", started=-10, health=HEALTHY),
        task("sick", started=-200, health=HealthStatus.UNKNOWN),
        task("pending", status=PENDING),
        task("waiting", status=PROVISIONING),
    ]
    s = svc(dep(state=RolloutState.COMPLETED), desired=1, completed="web:2")
    p = run(s, tasks, hc={"web:2": True})
    assert stopped_ids(p) == ["waiting", "pending", "sick", "new-healthy"]
    assert {s.reason for s in p.stops} == {"Scaling activity initiated by (deployment hd-new)"}
    assert p.launches == []


def test_scale_in_to_zero_ignores_minimum_healthy() -> None:
    s = svc(dep(state=RolloutState.COMPLETED), desired=0, completed="web:2")
    p = run(s, [task("a"), task("b")])
    assert sorted(stopped_ids(p)) == ["a", "b"]


def test_stopping_tasks_are_not_counted_nor_stopped_again() -> None:
    s = svc(dep(state=RolloutState.COMPLETED), desired=2, completed="web:2")
    tasks = [task("a"), task("gone", desired=DesiredStatus.STOPPED)]
    p = run(s, tasks)
    assert p.launches == [Launch("hd-new", 1)] and p.stops == []
    assert p.service.running_count == 1


# -- rolling deployments, simulated ---------------------------------------------------------
class Sim:
    """A cluster that does what plans say: launched tasks are PENDING, RUNNING a tick later
    (or crash, per task definition) and HEALTHY (or UNHEALTHY) another tick later when
    health-checked; stopped tasks are STOPPED (ServiceSchedulerInitiated) a tick later."""

    def __init__(self, service: Service, tasks=(), node_infos=None, hc=None, behaviour=None):
        self.service = service
        self.tasks = {t.task_id: t for t in tasks}
        self.nodes = list(NODES if node_infos is None else node_infos)
        self.hc = hc or {}
        self.behaviour = behaviour or {}
        self.now = 0.0
        self.seq = itertools.count(1)
        self.events: list[str] = []
        self.new_ids = (f"hd-{i:012x}" for i in itertools.count(1))

    def visible(self) -> list[Task]:
        seen = self.service.tasks_seen_until
        return [
            t
            for t in self.tasks.values()
            if t.last_status != LastStatus.STOPPED or seen is None or t.stopped_at >= seen
        ]

    def step(self) -> Plan:
        before = self.visible()
        p = plan(
            PlanInput(
                service=self.service,
                tasks=before,
                health_checked=self.hc,
                nodes=self.nodes,
                now=at(self.now),
                new_id=lambda: next(self.new_ids),
            )
        )
        check_invariants(self.service, before, p, self.hc)
        self.events += p.events
        self.service = p.service
        for s in p.stops:
            t = self.tasks[s.task_id]
            t.desired_status = DesiredStatus.STOPPED
            t.stopped_reason = s.reason
            t.stop_code = StopCode.SERVICE_SCHEDULER_INITIATED
        active = [n.node_id for n in self.nodes if n.status == NodeStatus.ACTIVE]
        for launch in p.launches:
            d = next(d for d in self.service.deployments if d.id == launch.deployment_id)
            for _ in range(launch.count):
                n = next(self.seq)
                tid = f"t{n:04d}-{d.task_definition.replace(':', '')}"
                node = launch.node_id or active[n % len(active)]
                self.tasks[tid] = task(
                    tid, d.id, PENDING, node, d.task_definition, created=self.now
                )
        return p

    def tick(self, seconds: float = 5) -> None:
        self.now += seconds
        for t in self.tasks.values():
            how = self.behaviour.get(t.task_definition_arn, "ok")
            if t.last_status == LastStatus.STOPPED:
                continue
            if t.desired_status == DesiredStatus.STOPPED:
                t.last_status, t.stopped_at = LastStatus.STOPPED, at(self.now)
            elif t.last_status == RUNNING:
                if self.hc.get(t.task_definition_arn) and t.health_status == UNKNOWN:
                    t.health_status = {"unhealthy": UNHEALTHY, "unknown": UNKNOWN}.get(how, HEALTHY)
            elif how == "crash":
                t.last_status, t.desired_status = LastStatus.STOPPED, DesiredStatus.STOPPED
                t.started_at = t.stopped_at = at(self.now)
                t.stop_code = StopCode.ESSENTIAL_CONTAINER_EXITED
                t.stopped_reason = "Essential container in task exited"
            else:
                t.last_status, t.started_at = RUNNING, at(self.now)

    def live(self, td: str | None = None) -> list[Task]:
        return [
            t
            for t in self.tasks.values()
            if t.last_status != LastStatus.STOPPED
            and t.desired_status == DesiredStatus.RUNNING
            and (td is None or t.task_definition_arn == td)
        ]

    def until(self, done, steps: int = 200, seconds: float = 5) -> None:
        for _ in range(steps):
            self.step()
            if done(self):
                return
            self.tick(seconds)
        raise AssertionError(f"did not converge: {self.service.deployments}")


def _healthy(t: Task, hc: dict[str, bool]) -> bool:
    live = t.desired_status == DesiredStatus.RUNNING and t.last_status == RUNNING
    return live and (not hc.get(t.task_definition_arn) or t.health_status == HEALTHY)


def check_invariants(service: Service, tasks: list[Task], p: Plan, hc: dict[str, bool]) -> None:
    """Launches never take the live count above maximumPercent; tasks being replaced are
    stopped only while minimumHealthyPercent stays healthy (scale-in, deletion and, for
    daemons, nodes that no longer take them aside)."""
    live = [
        t
        for t in tasks
        if t.last_status != LastStatus.STOPPED and t.desired_status == DesiredStatus.RUNNING
    ]
    by_id = {t.task_id: t for t in live}
    stops = stopped_ids(p)
    assert len(stops) == len(set(stops)) and set(stops) <= set(by_id)
    if service.status != ServiceStatus.ACTIVE:
        assert p.launches == []
        return
    daemon = service.scheduling_strategy == SchedulingStrategy.DAEMON
    desired = p.service.desired_count
    low, high = service.deployment_configuration.limits(service.scheduling_strategy)
    primary = p.service.primary
    assert primary is not None
    assert all(launch.deployment_id == primary.id and launch.count > 0 for launch in p.launches)
    if p.launches:
        assert len(live) - len(stops) + launched(p) <= maximum_tasks(desired, high)
    guarded = ("Service deployment replaced task",) if daemon else ("Service", "Node ")
    if any(_healthy(by_id[x.task_id], hc) and x.reason.startswith(guarded) for x in p.stops):
        healthy_after = sum(1 for t in live if _healthy(t, hc) and t.task_id not in stops)
        assert healthy_after >= minimum_healthy_tasks(desired, low)


def _rollout(min_pct: int | None, max_pct: int | None, hc: bool = True) -> Sim:
    old = [
        task(f"old{i}", "hd-old", td="web:1", node=f"n{i + 1}", health=HEALTHY, started=-100 + i)
        for i in range(3)
    ]
    s = svc(
        dep("hd-new", "web:2", created=0),
        dep("hd-old", "web:1", ACTIVE, created=-500, state=RolloutState.COMPLETED),
        min_pct=min_pct,
        max_pct=max_pct,
    )
    return Sim(s, old, hc={"web:1": hc, "web:2": hc})


def _completed(sim: Sim) -> bool:
    primary = sim.service.primary
    return primary is not None and primary.rollout_state == RolloutState.COMPLETED


def test_rolling_deployment_100_200_launches_all_first_then_stops_old() -> None:
    sim = _rollout(None, None)
    first = sim.step()
    assert first.launches == [Launch("hd-new", 3)] and first.stops == []
    sim.tick()
    assert sim.step().stops == []  # new ones not yet HEALTHY: all 3 old must stay
    sim.tick()
    third = sim.step()
    assert sorted(stopped_ids(third)) == ["old0", "old1", "old2"]
    sim.tick()
    sim.until(_completed)
    final = sim.service
    assert [d.id for d in final.deployments] == ["hd-new"]
    assert final.completed_task_definition == "web:2"
    assert final.deployments[0].rollout_state_reason == "ECS deployment hd-new completed."
    assert final.deployments[0].desired_count == 3
    assert final.deployments[0].running_count == 3
    assert "(service web) has reached a steady state." in sim.events
    assert len(sim.live("web:2")) == 3 and sim.live("web:1") == []


def test_rolling_deployment_50_100_stops_before_launching() -> None:
    sim = _rollout(50, 100)
    first = sim.step()
    assert first.launches == [] and stopped_ids(first) == ["old0"]  # min 2 healthy, max 3
    sim.tick()
    assert sim.step().launches == [Launch("hd-new", 1)]
    sim.tick()
    sim.until(_completed)
    assert len(sim.live("web:2")) == 3


def test_rolling_deployment_0_100_stops_everything_first() -> None:
    sim = _rollout(0, 100)
    first = sim.step()
    assert first.launches == [] and len(first.stops) == 3
    sim.tick()
    assert sim.step().launches == [Launch("hd-new", 3)]
    sim.tick()
    sim.until(_completed)


def test_rolling_deployment_without_health_checks() -> None:
    sim = _rollout(100, 150, hc=False)  # max 4: one new task at a time
    assert sim.step().launches == [Launch("hd-new", 1)]
    sim.tick()
    sim.until(_completed)
    assert len(sim.live("web:2")) == 3


def test_deployment_waits_for_health_checks() -> None:
    sim = _rollout(None, None)
    sim.behaviour["web:2"] = "unknown"  # health never reported: never HEALTHY
    sim.hc["web:2"] = True
    sim.step()
    sim.tick()
    for _ in range(5):
        p = sim.step()
        sim.tick()
        assert p.stops == [] and p.launches == []
    assert sim.service.primary.rollout_state == RolloutState.IN_PROGRESS


# -- health checks and grace ------------------------------------------------------------------
def test_unhealthy_task_stopped_after_grace_and_replaced() -> None:
    s = svc(dep(state=RolloutState.COMPLETED), desired=1, grace=60, completed="web:2")
    sick = task("sick", started=0, health=UNHEALTHY)
    within = run(s, [sick], now=30, hc={"web:2": True})
    assert within.stops == [] and within.launches == []
    assert within.wake_at == at(60)
    after = run(s, [sick], now=60, hc={"web:2": True})
    assert [(x.task_id, x.reason) for x in after.stops] == [
        ("sick", "Task failed container health checks")
    ]
    assert after.launches == [Launch("hd-new", 1)]


def test_health_check_failures_count_for_the_breaker_but_long_runs_are_not_crashes() -> None:
    s = svc(dep(), desired=3, breaker=True)
    failed = task(
        "sick",
        status=LastStatus.STOPPED,
        started=-600,
        stopped=-1,
        stop_code=StopCode.SERVICE_SCHEDULER_INITIATED,
        reason="Task failed container health checks",
    )
    p = run(s, [failed])
    assert p.service.deployments[0].failed_tasks == 1
    assert p.service.throttle.consecutive_failures == 0
    assert "(service web) task sick stopped: Task failed container health checks" in p.events
    scaled = task(
        "scaled",
        status=LastStatus.STOPPED,
        stopped=-1,
        stop_code=StopCode.SERVICE_SCHEDULER_INITIATED,
        reason="Scaling activity initiated by (deployment hd-new)",
    )
    assert run(s, [scaled]).service.deployments[0].failed_tasks == 0


# -- the circuit breaker --------------------------------------------------------------------
def _breaking(rollback: bool, completed: str | None = "web:1") -> Sim:
    old = [
        task(f"old{i}", "hd-old", td="web:1", node=f"n{i + 1}", started=-100 + i) for i in range(3)
    ]
    s = svc(
        dep("hd-new", "web:2", created=0),
        dep("hd-old", "web:1", ACTIVE, created=-500, state=RolloutState.COMPLETED),
        breaker=True,
        rollback=rollback,
        completed=completed,
    )
    return Sim(s, old, behaviour={"web:2": "crash"})


def test_circuit_breaker_without_rollback_fails_and_freezes() -> None:
    sim = _breaking(rollback=False)
    for _ in range(60):
        sim.step()
        sim.tick(300)
        if sim.service.primary.rollout_state == RolloutState.FAILED:
            break
    primary = sim.service.primary
    assert primary.rollout_state == RolloutState.FAILED
    assert primary.failed_tasks == 3
    assert primary.rollout_state_reason == (
        "tasks failed to start: circuit breaker threshold of 3 reached"
    )
    failed_events = [e for e in sim.events if "deployment hd-new failed" in e]
    assert len(failed_events) == 1
    for _ in range(3):  # nothing more launched; the old tasks are left running
        p = sim.step()
        sim.tick(1000)
        assert p.launches == [] and p.stops == []
    assert len(sim.live("web:1")) == 3
    assert [d.id for d in sim.service.deployments] == ["hd-new", "hd-old"]


def test_circuit_breaker_rolls_back_and_the_rollback_completes() -> None:
    sim = _breaking(rollback=True)
    sim.until(lambda s: s.service.primary.id != "hd-new", seconds=300)
    back = sim.service.primary
    assert back.id == "hd-000000000001" and back.task_definition == "web:1"
    assert back.rollback_of == "hd-new" and back.desired_count == 3
    assert sim.service.task_definition == "web:1"
    # the failed deployment has no task left: dropped at once
    assert [d.id for d in sim.service.deployments] == ["hd-000000000001", "hd-old"]
    assert any(e.startswith("(service web) deployment hd-new failed: ") for e in sim.events)
    assert "(service web) rolling back to web:1" in sim.events
    assert sim.service.throttle.consecutive_failures == 0
    sim.tick()
    sim.until(_completed)
    assert [d.id for d in sim.service.deployments] == ["hd-000000000001"]
    assert sim.service.completed_task_definition == "web:1"
    assert len(sim.live("web:1")) == 3


def test_rollback_drains_the_failed_deployment_like_an_old_one() -> None:
    s = svc(dep(failed=2), breaker=True, rollback=True, completed="web:1")
    p = run(s, [task("survivor", started=-100), crashed("c", -1)], now=0)
    assert [(d.id, d.status, d.rollout_state) for d in p.service.deployments] == [
        ("hd-000000000001", PRIMARY, RolloutState.IN_PROGRESS),
        ("hd-new", ACTIVE, RolloutState.FAILED),
    ]
    failed = p.service.deployments[1]
    assert failed.desired_count == 1 and failed.updated_at == at(0)
    assert p.launches == [Launch("hd-000000000001", 3)]  # max 6 with one live
    assert p.stops == []  # the survivor stays until the rollback's tasks are healthy
    assert p.events == [
        "(service web) task c stopped: Essential container in task exited",
        "(service web) deployment hd-new failed: "
        "tasks failed to start: circuit breaker threshold of 3 reached.",
        "(service web) rolling back to web:1",
    ]


def test_no_rollback_without_a_completed_task_definition() -> None:
    s = svc(dep(failed=2), breaker=True, rollback=True, completed=None)
    p = run(s, [crashed("c1", -1)])
    assert p.service.primary.id == "hd-new"
    assert p.service.primary.rollout_state == RolloutState.FAILED
    assert p.launches == []
    assert not any("rolling back" in e for e in p.events)


def test_a_failing_rollback_is_not_rolled_back_again() -> None:
    s = svc(
        dep("hd-back", "web:1", failed=2, rollback_of="hd-bad"),
        breaker=True,
        rollback=True,
        completed="web:1",
    )
    p = run(s, [crashed("c1", -1, deployment="hd-back")])
    assert [d.id for d in p.service.deployments] == ["hd-back"]
    assert p.service.primary.rollout_state == RolloutState.FAILED


# -- the launch throttle ---------------------------------------------------------------------
def test_throttle_delay_grows_to_fifteen_minutes() -> None:
    assert [throttle_delay(n) for n in range(1, 6)] == [0, 10, 20, 40, 80]
    assert throttle_delay(20) == 900


def test_crash_loop_throttle_grows_then_resets() -> None:
    s = svc(dep(state=RolloutState.COMPLETED), desired=1, completed="web:2")
    sim = Sim(s, behaviour={"web:2": "crash"})
    assert sim.step().launches == [Launch("hd-new", 1)]
    waits = []
    for _ in range(6):
        sim.tick(1)  # it crashes
        p = sim.step()
        th = sim.service.throttle
        waits.append(int((th.next_launch_at - at(sim.now)).total_seconds()))
        if th.consecutive_failures > 1:
            assert p.launches == [] and p.wake_at == th.next_launch_at
            sim.now = (th.next_launch_at - T0).total_seconds()
            p = sim.step()
        assert p.launches == [Launch("hd-new", 1)]
    assert waits == [0, 10, 20, 40, 80, 160]
    assert (
        "(service web) is unable to consistently start tasks successfully: "
        "6 consecutive failures; next launch in 160s."
    ) in sim.events
    sim.behaviour["web:2"] = "ok"
    sim.tick(1)
    p = sim.step()  # running, but not yet 30 s
    assert sim.service.throttle.consecutive_failures == 6
    started = sim.live()[0].started_at
    assert p.wake_at == started + timedelta(seconds=30)
    sim.now += 30
    sim.step()
    assert sim.service.throttle.consecutive_failures == 0
    assert sim.service.throttle.next_launch_at is None


def test_healthy_tasks_from_before_the_crashes_do_not_reset_the_throttle() -> None:
    s = svc(dep(state=RolloutState.COMPLETED), desired=3, completed="web:2")
    s.throttle.consecutive_failures = 2
    s.throttle.next_launch_at = at(10)  # accounted at 0, delay 10
    veteran = [task("a", started=-600), task("b", started=-600)]
    p = run(s, veteran, now=5)
    assert p.service.throttle.consecutive_failures == 2
    assert p.launches == [] and p.wake_at == at(10)
    fresh = task("c", started=1)
    assert run(s, [*veteran, fresh], now=31).service.throttle.consecutive_failures == 0


def test_failed_to_start_counts_as_crash_with_one_event_per_task() -> None:
    s = svc(dep(), desired=2)
    never = task(
        "x" * 20,
        status=LastStatus.STOPPED,
        started=None,
        stopped=-1,
        stop_code=StopCode.TASK_FAILED_TO_START,
        reason="CannotPullContainerError",
    )
    p = run(s, [never, crashed("y" * 20, -1)])
    assert p.service.throttle.consecutive_failures == 2
    assert p.events == [
        "(service web) task xxxxxxxxxxxx stopped: CannotPullContainerError",
        "(service web) task yyyyyyyyyyyy stopped: Essential container in task exited",
        "(service web) is unable to consistently start tasks successfully: "
        "2 consecutive failures; next launch in 10s.",
    ]


# -- the watermark ---------------------------------------------------------------------------
def test_stopped_task_is_accounted_exactly_once() -> None:
    s = svc(dep(), desired=1)
    a, b = crashed("a", -5), crashed("b", -5)
    p1 = run(s, [a])
    assert p1.service.deployments[0].failed_tasks == 1
    assert p1.service.tasks_seen_until == at(-5) and p1.service.tasks_seen_ids == ["a"]
    p2 = run(p1.service, [a, b])  # b stopped at the same instant, seen later
    assert p2.service.deployments[0].failed_tasks == 2
    assert p2.service.tasks_seen_ids == ["a", "b"]
    p3 = run(p2.service, [a, b], now=1)
    assert p3.service.deployments[0].failed_tasks == 2
    assert p3.service.throttle == p2.service.throttle
    assert not any("stopped:" in e for e in p3.events)
    c = crashed("c", 0)
    p4 = run(p3.service, [a, b, c], now=1)
    assert p4.service.deployments[0].failed_tasks == 3
    assert p4.service.tasks_seen_until == at(0) and p4.service.tasks_seen_ids == ["c"]


# -- node drains --------------------------------------------------------------------------
def test_drain_moves_replicas_launching_before_stopping() -> None:
    tasks = [
        task("a1", node="n1", health=HEALTHY),
        task("a2", node="n1", health=HEALTHY),
        task("b1", node="n2", health=HEALTHY),
    ]
    s = svc(dep(state=RolloutState.COMPLETED), desired=3, completed="web:2")
    infos = [*nodes("n1", status=NodeStatus.DRAINING), *nodes("n2", "n3")]
    sim = Sim(s, tasks, node_infos=infos, hc={"web:2": True})
    first = sim.step()
    assert first.launches == [Launch("hd-new", 2)] and first.stops == []
    sim.tick()
    assert sim.step().stops == []  # replacements not healthy yet
    sim.tick()
    p = sim.step()
    assert sorted((x.task_id, x.reason) for x in p.stops) == [
        ("a1", "Node n1 is draining"),
        ("a2", "Node n1 is draining"),
    ]
    assert all(t.node_id != "n1" for t in sim.live())


def test_drain_with_no_headroom_keeps_minimum_healthy() -> None:
    tasks = [task("a1", node="n1"), task("b1", node="n2")]
    s = svc(dep(state=RolloutState.COMPLETED), desired=2, max_pct=100, completed="web:2")
    infos = [*nodes("n1", status=NodeStatus.DRAINING), *nodes("n2")]
    p = run(s, tasks, node_infos=infos)
    assert p.launches == [] and p.stops == []  # 100/100: stuck, as in ECS
    s.deployment_configuration.minimum_healthy_percent = 50
    p = run(s, tasks, node_infos=infos)
    assert stopped_ids(p) == ["a1"] and p.launches == []


# -- DAEMON ----------------------------------------------------------------------------------
def _daemon(*deps: Deployment, **kw) -> Service:
    return svc(*(deps or (dep(state=RolloutState.COMPLETED),)), daemon=True, **kw)


def test_daemon_one_task_per_eligible_node() -> None:
    infos = [*nodes("n1", "n2"), *nodes("n3", eligible=False)]
    p = run(_daemon(desired=0), node_infos=infos)
    assert p.launches == [Launch("hd-new", 1, "n1"), Launch("hd-new", 1, "n2")]
    assert p.service.desired_count == 2 and p.service.primary.desired_count == 2
    tasks = [task("a", node="n1"), task("dup", node="n1", started=-5), task("c", node="n3")]
    p = run(_daemon(), tasks, node_infos=infos)
    assert sorted((x.task_id, x.reason) for x in p.stops) == [
        ("c", "Node n3 no longer satisfies the placement constraints"),
        ("dup", "Scaling activity initiated by (deployment hd-new)"),
    ]
    assert p.launches == [Launch("hd-new", 1, "n2")]


def test_daemon_new_node_gets_a_task() -> None:
    s = _daemon(desired=2)
    tasks = [task("a", node="n1"), task("b", node="n2")]
    p = run(s, tasks, node_infos=nodes("n1", "n2"))
    assert p.launches == [] and p.stops == []
    p = run(p.service, tasks, node_infos=nodes("n1", "n2", "n3"))
    assert p.launches == [Launch("hd-new", 1, "n3")]
    assert p.service.desired_count == 3


def test_daemon_waits_for_room_on_its_node_without_churn() -> None:
    waiting = task("w", status=PROVISIONING)  # launched for n2, did not fit yet
    tasks = [task("a", node="n1"), waiting]
    p = run(_daemon(), tasks, node_infos=nodes("n1", "n2"))
    assert p.launches == [] and p.stops == []
    p = run(_daemon(), [*tasks, task("w2", status=PROVISIONING)], node_infos=nodes("n1", "n2"))
    assert stopped_ids(p) == ["w2"]


def test_daemon_rollout_stops_old_then_launches_on_that_node() -> None:
    old = [task(f"o{i}", "hd-old", td="web:1", node=f"n{i}") for i in (1, 2)]
    s = _daemon(dep(created=0), dep("hd-old", "web:1", ACTIVE, created=-500))
    sim = Sim(s, old, node_infos=nodes("n1", "n2"))
    first = sim.step()  # 0/100: room for none, no minimum: old ones go first
    assert first.launches == [] and sorted(stopped_ids(first)) == ["o1", "o2"]
    assert sim.step().launches == []  # old ones still stopping on those nodes
    sim.tick()
    assert sorted(x.node_id for x in sim.step().launches) == ["n1", "n2"]
    sim.tick()
    sim.until(_completed)
    assert [d.id for d in sim.service.deployments] == ["hd-new"]


def test_daemon_on_draining_node_stops_last() -> None:
    s = _daemon()
    tasks = [task("d1", node="n1"), task("d2", node="n2")]
    busy = [NodeInfo("n1", NodeStatus.DRAINING, True, non_daemon_tasks=2), *nodes("n2")]
    p = run(s, tasks, node_infos=busy)
    assert p.stops == [] and p.launches == [] and p.events == []
    assert p.service.desired_count == 1
    again = run(p.service, tasks, node_infos=busy, now=10)
    assert again.events == [] and again.stops == []
    assert again.service == p.service
    idle = [NodeInfo("n1", NodeStatus.DRAINING, True, non_daemon_tasks=0), *nodes("n2")]
    p = run(p.service, tasks, node_infos=idle, now=20)
    assert [(x.task_id, x.reason) for x in p.stops] == [("d1", "Node n1 is draining")]


def test_daemon_tasks_on_inactive_or_unknown_nodes_are_stopped() -> None:
    tasks = [task("a", node="n1"), task("b", node="gone")]
    infos = [*nodes("n1", status=NodeStatus.INACTIVE), *nodes("n2")]
    p = run(_daemon(), tasks, node_infos=infos)
    assert sorted((x.task_id, x.reason) for x in p.stops) == [
        ("a", "Node n1 is inactive"),
        ("b", "Node gone is not registered"),
    ]


# -- deletion --------------------------------------------------------------------------------
def test_draining_service_stops_everything_then_is_deletable() -> None:
    s = svc(
        dep(),
        dep("hd-old", "web:1", ACTIVE, created=-500),
        status=ServiceStatus.DRAINING,
        min_pct=100,
    )
    tasks = [task("a", health=HEALTHY), task("b", "hd-old", td="web:1"), task("p", status=PENDING)]
    p = run(s, tasks)
    assert sorted(stopped_ids(p)) == ["a", "b", "p"] and p.launches == []
    assert not p.deletable
    stopping = [t.model_copy(update={"desired_status": DesiredStatus.STOPPED}) for t in tasks]
    assert not run(p.service, stopping).deletable  # not gone yet
    gone = [
        t.model_copy(update={"last_status": LastStatus.STOPPED, "stopped_at": at(1)})
        for t in stopping
    ]
    assert run(p.service, gone, now=2).deletable


def test_draining_daemon_service_stops_everything() -> None:
    s = _daemon(status=ServiceStatus.DRAINING)
    busy = [NodeInfo("n1", NodeStatus.DRAINING, True, non_daemon_tasks=3), *nodes("n2")]
    p = run(s, [task("a", node="n1"), task("b", node="n2")], node_infos=busy)
    assert sorted(stopped_ids(p)) == ["a", "b"] and p.launches == []
    assert run(s, [], node_infos=busy).deletable


# -- properties over random inputs ----------------------------------------------------------
_STATES = [PROVISIONING, PENDING, LastStatus.ACTIVATING, RUNNING, RUNNING, RUNNING]


def _random_case(rng: random.Random, daemon: bool) -> tuple[Service, list[Task], list[NodeInfo]]:
    n_deps = rng.randint(2, 3)
    deps = [
        dep(
            f"hd-{i}",
            f"web:{i}",
            PRIMARY if i == n_deps - 1 else ACTIVE,
            created=i * 100,
            state=rng.choice(list(RolloutState)) if i == n_deps - 1 else RolloutState.COMPLETED,
        )
        for i in range(n_deps)
    ]
    infos = [
        NodeInfo(
            f"n{i}",
            rng.choice([NodeStatus.ACTIVE] * 3 + [NodeStatus.DRAINING, NodeStatus.INACTIVE]),
            rng.random() < 0.85,
            rng.randint(0, 1),
        )
        for i in range(rng.randint(1, 5))
    ]
    pct = rng.choice([(None, None), (50, 100), (0, 100), (50, 150), (100, 200), (25, 125)])
    s = svc(
        *reversed(deps),
        desired=rng.randint(0, 8),
        min_pct=pct[0],
        max_pct=pct[1],
        grace=rng.choice([0, 30]),
        daemon=daemon,
        breaker=rng.random() < 0.3,
    )
    tasks = []
    for i in range(rng.randint(0, 12)):
        d = rng.choice(deps)
        state = rng.choice(_STATES)
        tasks.append(
            task(
                f"t{i:02d}",
                d.id,
                state,
                rng.choice([i.node_id for i in infos] + ["lost"]),
                d.task_definition,
                health=rng.choice(list(HealthStatus)),
                started=rng.randint(-100, 0),
                desired=DesiredStatus.STOPPED if rng.random() < 0.15 else DesiredStatus.RUNNING,
            )
        )
    return s, tasks, infos


def _check_random(daemon: bool, seed: int, rounds: int = 1500) -> None:
    rng = random.Random(seed)
    for _ in range(rounds):
        s, tasks, infos = _random_case(rng, daemon)
        hc = {f"web:{i}": rng.random() < 0.5 for i in range(3)}
        now = rng.choice([0, 10, 40])
        before = (s.model_dump(), [t.model_dump() for t in tasks])
        p = run(s, tasks, node_infos=infos, hc=hc, now=now)
        assert before == (s.model_dump(), [t.model_dump() for t in tasks])  # inputs untouched
        check_invariants(s, tasks, p, hc)
        assert p == run(s, tasks, node_infos=infos, hc=hc, now=now)  # deterministic
        if daemon:
            _check_daemon(s, tasks, infos, p)


def _check_daemon(s: Service, tasks: list[Task], infos: list[NodeInfo], p: Plan) -> None:
    """At most one live PRIMARY task per eligible node once the plan is applied, and
    launches only on eligible ACTIVE nodes."""
    primary = p.service.primary
    eligible = {n.node_id for n in infos if n.status == NodeStatus.ACTIVE and n.eligible}
    stops = set(stopped_ids(p))
    per_node: dict[str, int] = {}
    for t in tasks:
        live = t.last_status != LastStatus.STOPPED and t.desired_status == DesiredStatus.RUNNING
        if live and t.task_id not in stops and t.started_by == primary.id and t.node_id:
            per_node[t.node_id] = per_node.get(t.node_id, 0) + 1
    for launch in p.launches:
        assert launch.node_id in eligible and launch.count == 1
        per_node[launch.node_id] = per_node.get(launch.node_id, 0) + 1
    assert all(per_node.get(n, 0) <= 1 for n in eligible)
    assert p.service.desired_count == (len(eligible) if s.status == ServiceStatus.ACTIVE else 0)


def test_random_replica_plans_keep_the_invariants() -> None:
    _check_random(daemon=False, seed=1234)


def test_random_daemon_plans_keep_the_invariants() -> None:
    _check_random(daemon=True, seed=5678)


def test_random_rollouts_converge() -> None:
    rng = random.Random(42)
    for _ in range(40):
        low, high = rng.choice([(None, None), (50, 100), (0, 100), (50, 150), (100, 150)])
        desired = rng.randint(1, 6)
        if (
            maximum_tasks(desired, high or 200) <= desired
            and minimum_healthy_tasks(desired, 100 if low is None else low) >= desired
        ):
            continue  # no room above desired and none below: stuck, as in ECS
        old = [
            task(f"old{i}", "hd-old", td="web:1", node=f"n{i % 3 + 1}", started=-100 + i)
            for i in range(desired)
        ]
        s = svc(
            dep(),
            dep("hd-old", "web:1", ACTIVE, created=-500, state=RolloutState.COMPLETED),
            desired=desired,
            min_pct=low,
            max_pct=high,
        )
        sim = Sim(s, old, hc={"web:2": rng.random() < 0.5})
        sim.until(_completed)
        assert len(sim.live("web:2")) == desired and sim.live("web:1") == []


def test_minimum_healthy_time_keeps_old_tasks_until_new_ones_settle() -> None:
    """A revision that crashes a moment after starting must not replace old tasks in that
    moment: new tasks count as healthy only after ``minimumHealthyTimeSeconds``."""
    s = svc(
        dep("hd-new", "web:2", created=0),
        dep("hd-old", "web:1", ACTIVE, created=-500, state=RolloutState.COMPLETED),
        desired=2,
        settle=3,
    )
    old = [task(f"old{i}", "hd-old", td="web:1", started=-400) for i in range(2)]
    new = [task(f"new{i}", "hd-new", started=-1) for i in range(2)]
    early = run(s, old + new)
    assert early.stops == []  # 100% of 2 must stay healthy; the new ones are 1 s old
    assert early.wake_at == at(2)  # when they will have run 3 s
    settled = run(s, old + [task(f"new{i}", "hd-new", started=-3) for i in range(2)])
    assert sorted(stopped_ids(settled)) == ["old0", "old1"]
