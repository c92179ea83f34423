"""The scaling loop on fake time, against a real store and a real service on the in-process
control plane (real processes): scale out at once on a backlog, in after the stabilization
window, within [min, max], activities recorded, a failing metric keeps the count and writes
one event per error streak, scheduled actions move the bounds."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from hatoba.api.services import ApiServices
from hatoba.config import Settings
from hatoba.controllers.scaling import Scaling
from hatoba.controllers.scaling_loop import ScalingLoop, ScalingSettings
from hatoba.model.clock import FakeClock
from hatoba.model.scaling import ActivityStatus
from hatoba.model.service import RolloutState, Service, ServiceSpec
from hatoba.scalers import MetricError, MetricReading, MetricSpec, TaskStatsProvider
from hatoba.server import control_plane

pytestmark = pytest.mark.timeout(90)

SLEEPER = [{"name": "main", "command": ["sleep", "300"], "memory": 16, "stopTimeout": 2}]
METRIC = {"redisList": {"url": "redis://127.0.0.1:1/0", "key": "jobs"}}  # never connected


class FakeSource:
    """A metric the test sets; records which evaluation pass was running at each read."""

    kind = "fake"

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.value = 0.0
        self.error: str | None = None
        self.reads = 0
        self.closed = False
        self.loop: ScalingLoop | None = None
        self.pass_at_read = 0

    async def read(self) -> MetricReading:
        self.reads += 1
        assert self.loop is not None
        self.pass_at_read = self.loop.passes_started
        if self.error is not None:
            raise MetricError(self.error)
        return MetricReading(self.value, self.clock.now(), {})

    async def close(self) -> None:
        self.closed = True


@pytest.fixture
async def cp(tmp_path: Path) -> AsyncIterator[ApiServices]:
    """The control plane without its own scaling loop: the test runs one on fake time."""
    async with control_plane(Settings(home=tmp_path / "home"), autoscaling=False) as services:
        yield services


class Rig:
    def __init__(self, cp: ApiServices) -> None:
        self.cp = cp
        self.clock = FakeClock()
        self.source = FakeSource(self.clock)
        self.opened: list[MetricSpec] = []

        def opener(spec: MetricSpec, stats: TaskStatsProvider | None) -> FakeSource:
            self.opened.append(spec)
            return self.source

        self.loop = ScalingLoop(
            cp.store,
            self.clock,
            cp.services,
            holder="scaling-test",
            settings=ScalingSettings(lease_ttl=30, tick=1.0),
            open_source=opener,
        )
        self.source.loop = self.loop
        self.scaling = Scaling(cp.store, self.clock, cp.services, metrics=self.loop)
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self.loop.run())
        await asyncio.wait_for(self.loop.is_leader.wait(), 10)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def step(self, seconds: float = 1.0) -> None:
        """Move fake time; return once the metric was read and a pass ran after it."""
        reads = self.source.reads
        await self.clock.advance(seconds)
        await until(lambda: self.source.reads > reads)
        after = self.source.pass_at_read
        await until(lambda: self.loop.passes > after)

    async def desired(self, name: str = "worker") -> int:
        svc = await self.cp.services.get(name)
        return svc.desired_count


async def until(check: Callable[[], bool], timeout: float = 20) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.005)


async def service(cp: ApiServices, name: str = "worker", count: int = 1) -> Service:
    await cp.task_definitions.register({"family": name, "containerDefinitions": SLEEPER})
    return await cp.services.create(
        ServiceSpec(service_name=name, task_definition=name, desired_count=count)
    )


async def steady(cp: ApiServices, name: str = "worker") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while True:
        svc = await cp.services.describe(name)
        p = svc.primary
        if p is not None and p.rollout_state == RolloutState.COMPLETED:
            return
        assert loop.time() < deadline, svc.model_dump_json(indent=1)
        await asyncio.sleep(0.1)


def backlog_policy(**cfg: Any) -> dict[str, Any]:
    return {
        "policyName": "backlog",
        "policyType": "TargetTrackingScaling",
        "targetTrackingConfiguration": {"metric": METRIC, "targetValue": 10} | cfg,
    }


@pytest.fixture
async def rig(cp: ApiServices) -> AsyncIterator[Rig]:
    r = Rig(cp)
    yield r
    await r.stop()


async def test_scales_out_at_once_and_in_after_the_window(cp: ApiServices, rig: Rig) -> None:
    await service(cp)
    await rig.scaling.register_target("worker", {"minCapacity": 1, "maxCapacity": 5})
    await rig.scaling.put_policy("worker", backlog_policy(scaleInStabilizationSeconds=60))
    await rig.start()
    await rig.step()
    assert await rig.desired() == 1
    assert rig.opened[0].kind == "redisList"
    rig.source.value = 35
    await rig.step()
    assert await rig.desired() == 4  # ceil(35 / 10), at once
    rig.source.value = 1000
    await rig.step()
    assert await rig.desired() == 5  # never above max
    await steady(cp)
    rig.source.value = 0
    for _ in range(5):
        await rig.step(10)
    assert await rig.desired() == 5  # within the 60 s window since the backlog was seen
    await rig.step(15)  # 65 s after the last high recommendation
    assert await rig.desired() == 1  # never below min
    activities = await rig.scaling.activities("worker")
    assert [(a.from_count, a.to_count) for a in activities] == [(5, 1), (4, 5), (1, 4)]
    first = activities[-1]
    assert (first.policy_name, first.metric_value, first.status) == (
        "backlog",
        35,
        ActivityStatus.SUCCESSFUL,
    )
    assert "metric 35" in first.reason
    assert activities[0].at > activities[1].at > activities[2].at
    status = (await rig.scaling.describe("worker")).metrics["backlog"]
    assert (status.value, status.error, status.kind) == (0, None, "redisList")


async def test_a_failing_metric_keeps_the_count_and_writes_one_event(
    cp: ApiServices, rig: Rig
) -> None:
    await service(cp, count=3)
    await steady(cp)
    await rig.scaling.register_target(
        "worker", {"minCapacity": 0, "maxCapacity": 5, "scaleToZeroCooldownSeconds": 0}
    )
    await rig.scaling.put_policy("worker", backlog_policy(scaleInStabilizationSeconds=0))
    rig.source.error = "connection refused"
    await rig.start()
    for _ in range(5):
        await rig.step(100)
    assert await rig.desired() == 3
    events = [e.message for e in await cp.services.events("worker")]
    failing = [m for m in events if "cannot read its metric" in m]
    assert len(failing) == 1 and "connection refused" in failing[0]
    described = await rig.scaling.describe("worker")
    assert "connection refused" in (described.metrics["backlog"].error or "")
    assert await rig.scaling.activities("worker") == []
    rig.source.error = None  # recovers: the metric (0) now scales in, then to zero
    await rig.step()
    assert await rig.desired() == 0
    rig.source.error = "timeout"  # a new streak: one more event
    await rig.step()
    await rig.step()
    events = [e.message for e in await cp.services.events("worker")]
    assert len([m for m in events if "cannot read its metric" in m]) == 2


async def test_from_zero_on_activation_and_failed_reads_never_zero(
    cp: ApiServices, rig: Rig
) -> None:
    await service(cp, count=0)
    await rig.scaling.register_target(
        "worker", {"minCapacity": 0, "maxCapacity": 4, "scaleToZeroCooldownSeconds": 30}
    )
    await rig.scaling.put_policy(
        "worker", backlog_policy(activationValue=2, scaleInStabilizationSeconds=0)
    )
    await rig.start()
    rig.source.value = 2
    await rig.step()
    assert await rig.desired() == 0  # not above activation
    rig.source.value = 3
    await rig.step()
    assert await rig.desired() == 1
    await steady(cp)
    rig.source.value = 0
    await rig.step(10)
    assert await rig.desired() == 1  # the scale-to-zero cooldown
    rig.source.error = "down"
    await rig.step(60)
    assert await rig.desired() == 1  # failed read: never to zero
    rig.source.error = None
    await rig.step(29)  # the failed read (t=72) counts as activity: 30 s from it
    assert await rig.desired() == 1
    await rig.step(2)
    assert await rig.desired() == 0


async def test_scheduled_action_raises_the_minimum(cp: ApiServices, rig: Rig) -> None:
    await service(cp)
    await rig.scaling.register_target("worker", {"minCapacity": 1, "maxCapacity": 5})
    await rig.scaling.put_policy("worker", backlog_policy())
    await rig.scaling.put_scheduled_action(
        "worker",
        {
            "scheduledActionName": "rush",
            "schedule": "cron(0 9 * * ? *)",
            "timezone": "Asia/Tokyo",
            "minCapacity": 3,
        },
    )
    await rig.start()
    await rig.step()
    assert await rig.desired() == 1
    await rig.step(8 * 3600)
    assert (await rig.scaling.get_target("worker")).min_capacity == 1
    await rig.step(16 * 3600)  # 09:00 in Tokyo is 00:00 UTC, a day after the fake start
    target = await rig.scaling.get_target("worker")
    assert target.min_capacity == 3 and "rush" in target.scheduled_fired
    assert await rig.desired() == 3
    activities = await rig.scaling.activities("worker")
    assert [a.policy_name for a in activities[:2]] == [None, "rush"]
    assert activities[0].reason == "at minCapacity 3"
    assert "scheduled action rush" in activities[1].reason


async def test_policy_changes_reopen_the_poller_and_deregister_closes_it(
    cp: ApiServices, rig: Rig
) -> None:
    await service(cp)
    await rig.scaling.register_target("worker", {"minCapacity": 1, "maxCapacity": 5})
    await rig.scaling.put_policy("worker", backlog_policy())
    await rig.start()
    await rig.step()
    assert len(rig.opened) == 1
    other = {"sql": {"url": "sqlite:////tmp/x.db", "query": "select 1"}}
    await rig.scaling.put_policy("worker", backlog_policy(metric=other))
    await rig.step()
    assert [s.kind for s in rig.opened] == ["redisList", "sql"]
    assert rig.source.closed
    await rig.scaling.deregister_target("worker")
    started = rig.loop.passes_started  # a pass begun before the deregistration may end
    await rig.clock.advance(1)
    await until(lambda: rig.loop.passes > started)
    assert rig.loop.metric_status("worker") == {}
