"""Services on real processes: kept at N, healed, rolled, rolled back, drained."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from hatoba.agent.node_agent import NodeAgent
from hatoba.agent.runner import RunnerContext
from hatoba.agent.specs import base_environment
from hatoba.api.services import ApiServices
from hatoba.controllers.tasks import RunTaskRequest
from hatoba.drivers.process.driver import ProcessDriver
from hatoba.model.layout import DataLayout
from hatoba.model.node import NodeStatus
from hatoba.model.service import RolloutState, Service, ServiceSpec, ServiceUpdate
from hatoba.model.task import DesiredStatus, LastStatus, StopCode, Task
from tests.integration.conftest import container

pytestmark = pytest.mark.timeout(120)

SLEEPER = [container("main", ["sleep", "300"], memory=16, stopTimeout=2)]


async def register(cp: ApiServices, family: str, containers: list[dict[str, Any]]) -> str:
    registered = await cp.task_definitions.register(
        {"family": family, "containerDefinitions": containers}
    )
    return registered.task_definition.arn


async def until(
    cp: ApiServices,
    name: str,
    check: Callable[[Service, list[Task]], bool],
    timeout: float = 30,
) -> tuple[Service, list[Task]]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        svc = await cp.services.describe(name)
        tasks = await cp.services.tasks(name)
        if check(svc, tasks):
            return svc, tasks
        if loop.time() > deadline:
            events = [e.message for e in await cp.services.events(name, limit=15)]
            raise AssertionError(f"timed out: {svc.model_dump_json(indent=1)}\n{events}")
        await asyncio.sleep(0.1)


def running(n: int) -> Callable[[Service, list[Task]], bool]:
    def check(svc: Service, tasks: list[Task]) -> bool:
        return (
            svc.running_count == n
            and len(tasks) == n
            and all(t.last_status == LastStatus.RUNNING for t in tasks)
        )

    return check


def steady(svc: Service, tasks: list[Task]) -> bool:
    primary = svc.primary
    return (
        primary is not None
        and primary.rollout_state == RolloutState.COMPLETED
        and len(svc.deployments) == 1
        and svc.running_count == svc.desired_count
    )


async def test_keeps_n_running_and_replaces_a_task_that_exits(cp: ApiServices) -> None:
    await register(cp, "web", SLEEPER)
    await cp.services.create(
        ServiceSpec(service_name="web", task_definition="web", desired_count=3)
    )
    _, tasks = await until(cp, "web", running(3))
    victim = tasks[0]
    pid = victim.containers[0].pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    _, after = await until(
        cp, "web", lambda s, ts: running(3)(s, ts) and victim.task_id not in {t.task_id for t in ts}
    )
    gone = await cp.store.get_task(victim.task_id)
    assert gone is not None and gone.stop_code == StopCode.ESSENTIAL_CONTAINER_EXITED
    events = [e.message for e in await cp.services.events("web")]
    assert any("has started 1 tasks" in m for m in events)
    assert all(t.group == "service:web" for t in after)


async def test_rolling_update_stays_within_limits(cp: ApiServices) -> None:
    await register(cp, "api", SLEEPER)
    config = {"minimumHealthyPercent": 50, "maximumPercent": 150}
    await cp.services.create(
        ServiceSpec.model_validate(
            {
                "serviceName": "api",
                "taskDefinition": "api",
                "desiredCount": 4,
                "deploymentConfiguration": config,
            }
        )
    )
    await until(cp, "api", steady)
    v2 = await register(cp, "api", [container("main", ["sleep", "301"], memory=16, stopTimeout=2)])
    await cp.services.update("api", ServiceUpdate(task_definition="api"))
    worst_high, worst_low = 0, 99
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 40
    while True:
        svc = await cp.services.describe("api")
        live = await cp.services.tasks("api")
        counted = [t for t in live if t.desired_status == DesiredStatus.RUNNING]
        healthy = [t for t in counted if t.last_status == LastStatus.RUNNING]
        worst_high = max(worst_high, len(counted))
        worst_low = min(worst_low, len(healthy))
        if steady(svc, live) and svc.task_definition == v2:
            break
        assert loop.time() < deadline, svc.model_dump_json(indent=1)
        await asyncio.sleep(0.02)
    assert worst_high <= 6  # floor(4 x 150%)
    assert worst_low >= 2  # ceil(4 x 50%)
    assert {t.task_definition_arn for t in await cp.services.tasks("api")} == {v2}


async def test_broken_revision_trips_the_circuit_breaker_and_rolls_back(cp: ApiServices) -> None:
    good = await register(cp, "wrk", SLEEPER)
    spec = {
        "serviceName": "wrk",
        "taskDefinition": "wrk",
        "desiredCount": 2,
        "deploymentConfiguration": {"deploymentCircuitBreaker": {"enable": True, "rollback": True}},
    }
    await cp.services.create(ServiceSpec.model_validate(spec))
    await until(cp, "wrk", steady)
    await register(cp, "wrk", [container("main", ["sh", "-c", "exit 3"], memory=16)])
    await cp.services.update("wrk", ServiceUpdate(task_definition="wrk"))

    def rolled_back(svc: Service, tasks: list[Task]) -> bool:
        return steady(svc, tasks) and svc.task_definition == good

    # three quick failures, each restart a little later (5 s, then 10 s back-off)
    svc, _ = await until(cp, "wrk", rolled_back, timeout=60)
    assert svc.primary is not None and svc.primary.rollback_of is not None
    events = [e.message for e in await cp.services.events("wrk")]
    assert any("circuit breaker" in m for m in events), events
    assert any("rolling back to wrk:1" in m for m in events), events


async def test_scale_to_zero_stops_every_task(cp: ApiServices) -> None:
    await register(cp, "zero", SLEEPER)
    await cp.services.create(
        ServiceSpec(service_name="zero", task_definition="zero", desired_count=2)
    )
    await until(cp, "zero", running(2))
    await cp.services.scale("zero", 0)
    await until(cp, "zero", lambda s, ts: not ts)
    every = await cp.services.tasks("zero", live_only=False)
    assert every and all(t.last_status == LastStatus.STOPPED for t in every)


async def test_delete_requires_zero_or_force_and_removes_the_service(cp: ApiServices) -> None:
    from hatoba.model.errors import Conflict, NotFound

    await register(cp, "gone", SLEEPER)
    await cp.services.create(
        ServiceSpec(service_name="gone", task_definition="gone", desired_count=1)
    )
    await until(cp, "gone", running(1))
    await cp.scaling.register_target("gone", {"minCapacity": 1, "maxCapacity": 3})
    with pytest.raises(Conflict):
        await cp.services.delete("gone")
    await cp.services.delete("gone", force=True)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while True:
        try:
            await cp.services.get("gone")
        except NotFound:
            break
        assert loop.time() < deadline
        await asyncio.sleep(0.1)
    assert await cp.store.get_scalable_target("gone") is None  # its autoscaling went too
    left = await cp.store.list_tasks(group="service:gone")
    assert left and all(t.last_status == LastStatus.STOPPED for t in left)


async def test_unhealthy_task_is_replaced_after_the_grace_period(cp: ApiServices) -> None:
    flag = Path(cp.layout.home) / "healthy"
    flag.write_text("")
    check = {"command": ["CMD-SHELL", f"test -e {flag}"], "interval": 5, "retries": 1}
    await register(cp, "hc", [container("main", ["sleep", "300"], memory=16, healthCheck=check)])
    await cp.services.create(
        ServiceSpec(
            service_name="hc",
            task_definition="hc",
            desired_count=1,
            health_check_grace_period_seconds=1,
        )
    )
    _, (first,) = await until(cp, "hc", steady)
    flag.unlink()
    await until(cp, "hc", lambda s, ts: first.task_id not in {t.task_id for t in ts})
    old = await cp.store.get_task(first.task_id)
    assert old is not None
    assert (old.stopped_reason or "").startswith("Task failed container health checks")


async def test_crash_loop_backs_off_and_says_so(cp: ApiServices) -> None:
    await register(cp, "crash", [container("main", ["sh", "-c", "exit 1"], memory=16)])
    await cp.services.create(
        ServiceSpec(service_name="crash", task_definition="crash", desired_count=1)
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while True:
        svc = await cp.services.get("crash")
        if svc.throttle.consecutive_failures >= 2:
            break
        assert loop.time() < deadline
        await asyncio.sleep(0.1)
    events = [e.message for e in await cp.services.events("crash")]
    assert any("unable to consistently start tasks" in m for m in events), events
    assert svc.throttle.next_launch_at is not None
    assert svc.throttle.next_launch_at > svc.updated_at - timedelta(seconds=1)
    # while backing off, nothing new starts
    count = len(await cp.services.tasks("crash", live_only=False))
    await asyncio.sleep(1)
    assert len(await cp.services.tasks("crash", live_only=False)) <= count + 1


@pytest.fixture
async def second_node(cp: ApiServices, tmp_path: Path) -> AsyncIterator[NodeAgent]:
    """Another node's agent, in this process, on the same store."""
    layout = DataLayout(tmp_path / "node-b")
    layout.home.mkdir(parents=True)
    ctx = RunnerContext(
        store=cp.store,
        driver=ProcessDriver(layout),
        clock=cp.agent.ctx.clock,
        layout=layout,
        secrets=cp.agent.ctx.secrets,
        base_env=base_environment(),
    )
    agent = NodeAgent(ctx, "node-b", attributes={"zone": "b"})
    task = asyncio.create_task(agent.run())
    await agent.ready.wait()
    yield agent
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for t in await cp.store.list_tasks(node_id="node-b"):
        if t.last_status != LastStatus.STOPPED:
            for c in t.containers:
                if c.pid:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(c.pid, signal.SIGKILL)


async def test_drain_moves_replicas_and_stops_daemons_last(
    cp: ApiServices, second_node: NodeAgent
) -> None:
    a, b = cp.agent.node_id, second_node.node_id
    await register(cp, "rep", SLEEPER)
    await register(cp, "logd", SLEEPER)
    await cp.services.create(
        ServiceSpec.model_validate(
            {
                "serviceName": "rep",
                "taskDefinition": "rep",
                "desiredCount": 2,
                "placementStrategy": [{"type": "spread", "field": "instanceId"}],
            }
        )
    )
    await cp.services.create(
        ServiceSpec(service_name="logd", task_definition="logd", scheduling_strategy="DAEMON")
    )
    _, reps = await until(cp, "rep", running(2))
    assert {t.node_id for t in reps} == {a, b}
    _, daemons = await until(cp, "logd", running(2))
    assert {t.node_id for t in daemons} == {a, b}
    # a standalone task on b keeps b's daemon alive until it stops too
    await register(cp, "batch", [container("main", ["sleep", "3"], memory=16)])
    batch = await cp.tasks.run(
        RunTaskRequest(
            task_definition="batch",
            placement_constraints=[{"type": "memberOf", "expression": f"nodeId == {b}"}],
        )
    )
    (batch_task,) = batch.tasks
    await cp.tasks.wait_for(batch_task.task_id, LastStatus.RUNNING, 10)

    await cp.nodes.set_status(b, NodeStatus.DRAINING)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    daemon_b = next(t for t in daemons if t.node_id == b)
    while True:
        on_b = [
            t for t in await cp.store.list_tasks(node_id=b) if t.last_status != LastStatus.STOPPED
        ]
        daemon = await cp.store.get_task(daemon_b.task_id)
        assert daemon is not None
        others = [t for t in on_b if t.task_id != daemon_b.task_id]
        if daemon.desired_status == DesiredStatus.STOPPED:
            # stopped only once everything else on the node had stopped
            assert not others, [t.group for t in others]
        if not on_b:
            break
        assert loop.time() < deadline, [(t.group, t.last_status) for t in on_b]
        await asyncio.sleep(0.05)
    _, reps = await until(cp, "rep", running(2))
    assert {t.node_id for t in reps} == {a}
    _, daemons = await until(cp, "logd", running(1))
    assert {t.node_id for t in daemons} == {a}
    done = await cp.store.get_task(batch_task.task_id)
    assert done is not None and done.stop_code == StopCode.ESSENTIAL_CONTAINER_EXITED


async def test_a_task_that_fits_nowhere_waits_with_its_reason_then_runs(
    cp: ApiServices,
) -> None:
    node = await cp.nodes.describe(cp.agent.node_id)
    big = node.memory * 6 // 10  # two of these do not fit on the node
    await register(cp, "big", [container("main", ["sleep", "300"], memory=big, stopTimeout=1)])
    await cp.services.create(
        ServiceSpec(service_name="big", task_definition="big", desired_count=2)
    )

    def one_waits(svc: Service, tasks: list[Task]) -> bool:
        return sorted(t.last_status for t in tasks) == [
            LastStatus.PROVISIONING,
            LastStatus.RUNNING,
        ]

    _, tasks = await until(cp, "big", one_waits)
    waiting = next(t for t in tasks if t.last_status == LastStatus.PROVISIONING)
    first = next(t for t in tasks if t.last_status == LastStatus.RUNNING)
    assert waiting.node_id is None
    assert waiting.pending_reason is not None and "RESOURCE:MEMORY" in waiting.pending_reason
    events = [e.message for e in await cp.services.events("big")]
    assert any("was unable to place a task" in m and "MEMORY" in m for m in events), events
    # capacity frees: the same task is placed and runs (and a replacement waits in turn)
    await cp.tasks.stop(first.task_id, "make room")
    placed = await cp.tasks.wait_for(waiting.task_id, LastStatus.RUNNING, 20)
    assert placed.last_status == LastStatus.RUNNING and placed.node_id == cp.agent.node_id
    assert placed.pending_reason is None
    await cp.services.scale("big", 0)
    await until(cp, "big", lambda s, ts: not ts)
