"""The scaling controller's declared side on a real SQLite store: every bad field named by
its JSON path and nothing stored, partial updates of a target, describe, and task scale-in
protection (limits, stopped tasks)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from hatoba.controllers.scaling import Scaling
from hatoba.controllers.services import Services
from hatoba.model.clock import FakeClock
from hatoba.model.errors import Conflict, NotFound, ValidationFailed
from hatoba.model.service import SchedulingStrategy, Service
from hatoba.model.task import DesiredStatus, LastStatus, Task
from hatoba.store.sql import SqlStore

METRIC = {"redisList": {"url": "redis://127.0.0.1:6379/0", "key": "jobs"}}


class Env:
    def __init__(self, store: SqlStore, clock: FakeClock) -> None:
        self.store = store
        self.clock = clock
        self.scaling = Scaling(store, clock, Services(store, clock))


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    store = SqlStore(f"sqlite+aiosqlite:///{tmp_path / 'hatoba.db'}")
    await store.migrate()
    clock = FakeClock()
    for name, strategy in (("worker", "REPLICA"), ("agentd", "DAEMON")):
        await store.create_service(
            Service(
                service_name=name,
                task_definition=f"{name}:1",
                scheduling_strategy=SchedulingStrategy(strategy),
                created_at=clock.now(),
                updated_at=clock.now(),
            )
        )
    yield Env(store, clock)
    await store.close()


def paths(exc: pytest.ExceptionInfo[ValidationFailed]) -> list[str]:
    return [e.path for e in exc.value.errors]


async def test_register_target_validates_and_updates_in_part(env: Env) -> None:
    with pytest.raises(ValidationFailed) as exc:
        await env.scaling.register_target("worker", {})
    assert paths(exc) == ["minCapacity", "maxCapacity"]
    with pytest.raises(ValidationFailed) as exc:
        await env.scaling.register_target("worker", {"minCapacity": 5, "maxCapacity": 2})
    assert [str(e) for e in exc.value.errors] == [
        "minCapacity: minCapacity 5 is above maxCapacity 2"
    ]
    with pytest.raises(ValidationFailed) as exc:
        await env.scaling.register_target("worker", {"minCap": 1, "maxCapacity": -1})
    assert sorted(paths(exc)) == ["maxCapacity", "minCap"]
    with pytest.raises(ValidationFailed) as exc:
        await env.scaling.register_target("agentd", {"minCapacity": 1, "maxCapacity": 2})
    assert paths(exc) == ["serviceName"]
    with pytest.raises(NotFound):
        await env.scaling.register_target("ghost", {"minCapacity": 1, "maxCapacity": 2})
    assert await env.store.list_scalable_targets() == []
    created = await env.scaling.register_target("worker", {"minCapacity": 1, "maxCapacity": 4})
    assert (created.min_capacity, created.max_capacity, created.version) == (1, 4, 1)
    updated = await env.scaling.register_target(
        "worker", {"maxCapacity": 9, "suspendedState": {"dynamicScalingInSuspended": True}}
    )
    assert (updated.min_capacity, updated.max_capacity) == (1, 9)
    assert updated.suspended_state.dynamic_scaling_in_suspended
    same = await env.scaling.register_target("worker", {"maxCapacity": 9})
    assert same.version == updated.version  # nothing changed: nothing written
    with pytest.raises(ValidationFailed) as exc:
        await env.scaling.register_target("worker", {"minCapacity": 10})
    assert paths(exc) == ["minCapacity"]


def tt_policy(**cfg: Any) -> dict[str, Any]:
    return {
        "policyName": "backlog",
        "policyType": "TargetTrackingScaling",
        "targetTrackingConfiguration": {"metric": METRIC, "targetValue": 10} | cfg,
    }


async def test_put_policy_names_every_bad_field(env: Env) -> None:
    with pytest.raises(NotFound, match="no scalable target"):
        await env.scaling.put_policy("worker", tt_policy())
    await env.scaling.register_target("worker", {"minCapacity": 1, "maxCapacity": 4})
    with pytest.raises(ValidationFailed) as exc:
        await env.scaling.put_policy("worker", tt_policy(targetValue=0, tolerance=2))
    assert paths(exc) == [
        "targetTrackingConfiguration.targetValue",
        "targetTrackingConfiguration.tolerance",
    ]
    with pytest.raises(ValidationFailed) as exc:
        bad_metric = {"redisList": {"url": "http://x", "key": ""}}
        await env.scaling.put_policy("worker", tt_policy(metric=bad_metric))
    assert paths(exc) == [
        "targetTrackingConfiguration.metric.redisList.url",
        "targetTrackingConfiguration.metric.redisList.key",
    ]
    with pytest.raises(ValidationFailed) as exc:
        await env.scaling.put_policy("worker", {"policyName": "x", "policyType": "StepScaling"})
    assert [str(e) for e in exc.value.errors] == [
        "stepScalingConfiguration: required with policyType StepScaling"
    ]
    step = {
        "metric": METRIC,
        "threshold": 100,
        "comparisonOperator": "GreaterThanOrEqualToThreshold",
        "stepAdjustments": [
            {"metricIntervalLowerBound": 0, "metricIntervalUpperBound": 50, "scalingAdjustment": 1},
            {"metricIntervalLowerBound": 60, "scalingAdjustment": 2},
        ],
    }
    with pytest.raises(ValidationFailed) as exc:
        await env.scaling.put_policy(
            "worker",
            {"policyName": "s", "policyType": "StepScaling", "stepScalingConfiguration": step},
        )
    assert paths(exc) == ["stepScalingConfiguration.stepAdjustments[1].metricIntervalLowerBound"]
    with pytest.raises(ValidationFailed) as exc:
        await env.scaling.put_policy(
            "worker", tt_policy() | {"policyType": "Simple", "stepScalingConfiguration": step}
        )
    assert paths(exc) == ["policyType"]
    assert await env.store.list_scaling_policies() == []
    stored = await env.scaling.put_policy("worker", tt_policy())
    await env.clock.advance(60)
    replaced = await env.scaling.put_policy("worker", tt_policy(targetValue=20))
    assert replaced.created_at == stored.created_at and replaced.updated_at > stored.updated_at
    step["stepAdjustments"][1]["metricIntervalLowerBound"] = 50
    await env.scaling.put_policy(
        "worker", {"policyName": "s", "policyType": "StepScaling", "stepScalingConfiguration": step}
    )
    described = await env.scaling.describe("worker")
    assert [p.policy_name for p in described.policies] == ["backlog", "s"]
    assert described.metrics == {}  # no loop on this control plane
    await env.scaling.delete_policy("worker", "s")
    with pytest.raises(NotFound):
        await env.scaling.delete_policy("worker", "s")


async def test_put_scheduled_action_validation(env: Env) -> None:
    await env.scaling.register_target("worker", {"minCapacity": 1, "maxCapacity": 4})
    base = {"scheduledActionName": "night", "schedule": "cron(0 22 * * ? *)", "minCapacity": 0}
    with pytest.raises(ValidationFailed) as exc:
        await env.scaling.put_scheduled_action(
            "worker", base | {"schedule": "cron(0 25 * * ? *)", "timezone": "Mars/Olympus"}
        )
    assert sorted(set(paths(exc))) == ["schedule", "timezone"]
    with pytest.raises(ValidationFailed) as exc:
        await env.scaling.put_scheduled_action("worker", base | {"minCapacity": None})
    assert [str(e) for e in exc.value.errors] == [
        "minCapacity: set minCapacity, maxCapacity or both"
    ]
    with pytest.raises(ValidationFailed) as exc:
        await env.scaling.put_scheduled_action(
            "worker", base | {"minCapacity": 5, "maxCapacity": 2}
        )
    assert paths(exc) == ["minCapacity"]
    with pytest.raises(ValidationFailed) as exc:
        await env.scaling.put_scheduled_action(
            "worker",
            base | {"startTime": "2026-02-01T00:00:00Z", "endTime": "2026-01-01T00:00:00Z"},
        )
    assert paths(exc) == ["endTime"]
    with pytest.raises(ValidationFailed) as exc:
        await env.scaling.put_scheduled_action("worker", base | {"scheduledActionName": ""})
    assert paths(exc) == ["scheduledActionName"]
    assert await env.store.list_scheduled_actions() == []
    stored = await env.scaling.put_scheduled_action("worker", base | {"timezone": "Asia/Tokyo"})
    assert stored.timezone == "Asia/Tokyo" and stored.min_capacity == 0
    described = await env.scaling.describe("worker")
    assert [a.scheduled_action_name for a in described.scheduled_actions] == ["night"]
    await env.scaling.deregister_target("worker")
    with pytest.raises(NotFound):
        await env.scaling.describe("worker")


async def test_task_protection_limits_and_states(env: Env) -> None:
    now = env.clock.now()
    task = await env.store.create_task(
        Task(task_id="t1", task_definition_arn="worker:1", created_at=now, group="service:worker")
    )
    got = await env.scaling.set_task_protection(task.task_id, True)
    assert got.protection_enabled and got.expiration_date == now + timedelta(minutes=120)
    stored = await env.store.get_task("t1")
    assert stored is not None and stored.protected_until == got.expiration_date
    got = await env.scaling.set_task_protection("t1", True, 2880)
    assert got.expiration_date == now + timedelta(hours=48)
    for bad in (0, 2881):
        with pytest.raises(ValidationFailed) as exc:
            await env.scaling.set_task_protection("t1", True, bad)
        assert paths(exc) == ["expiresInMinutes"]
    await env.clock.advance(48 * 3600)
    expired = await env.scaling.get_task_protection("t1")
    assert not expired.protection_enabled and expired.expiration_date is None
    off = await env.scaling.set_task_protection("t1", False)
    assert not off.protection_enabled
    assert (await env.store.get_task("t1")).protected_until is None  # type: ignore[union-attr]
    with pytest.raises(NotFound):
        await env.scaling.set_task_protection("nope", True)
    stopped = (await env.store.get_task("t1")).model_copy(  # type: ignore[union-attr]
        update={"desired_status": DesiredStatus.STOPPED, "last_status": LastStatus.STOPPED}
    )
    await env.store.update_task(stopped)
    with pytest.raises(Conflict, match="stopped"):
        await env.scaling.set_task_protection("t1", True)
