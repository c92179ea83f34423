"""Autoscaling state: scalable targets (compare-and-set, change feed), policies and scheduled
actions (upserts under a target, deleted with it), activities (order, limit, pruning)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from hatoba.model.errors import Conflict, NotFound
from hatoba.model.scaling import (
    MAX_ACTIVITIES_KEPT,
    ActivityStatus,
    PolicyType,
    ScalableTarget,
    ScalingActivity,
    ScalingPolicy,
    ScheduledAction,
)
from hatoba.store.sql import SqlStore
from tests.store.conftest import T0


def target(service: str = "worker", **fields: Any) -> ScalableTarget:
    fields.setdefault("min_capacity", 1)
    fields.setdefault("max_capacity", 10)
    return ScalableTarget(service_name=service, created_at=T0, updated_at=T0, **fields)


def policy(
    service: str = "worker", name: str = "backlog", target_value: float = 10
) -> ScalingPolicy:
    return ScalingPolicy.model_validate(
        {
            "policyName": name,
            "serviceName": service,
            "policyType": "TargetTrackingScaling",
            "targetTrackingConfiguration": {
                "metric": {"redisList": {"url": "redis://127.0.0.1:6379/0", "key": "jobs"}},
                "targetValue": target_value,
            },
            "createdAt": T0,
            "updatedAt": T0,
        }
    )


def action(service: str = "worker", name: str = "night", **fields: Any) -> ScheduledAction:
    return ScheduledAction(
        scheduled_action_name=name,
        service_name=service,
        schedule="cron(0 22 * * ? *)",
        timezone="Asia/Tokyo",
        created_at=T0,
        updated_at=T0,
        **fields,
    )


def activity(service: str, n: int) -> ScalingActivity:
    return ScalingActivity(
        activity_id=f"act-{n}",
        service_name=service,
        at=T0 + timedelta(seconds=n),
        policy_name="backlog",
        metric_value=float(n),
        from_count=n,
        to_count=n + 1,
        reason=f"step {n}",
    )


async def test_target_insert_get_list_and_cas(store: SqlStore) -> None:
    created = await store.put_scalable_target(target("worker"))
    assert created.version == 1
    await store.put_scalable_target(target("api", min_capacity=0, max_capacity=3))
    assert await store.get_scalable_target("worker") == created
    assert await store.get_scalable_target("missing") is None
    assert [t.service_name for t in await store.list_scalable_targets()] == ["api", "worker"]
    with pytest.raises(Conflict):
        await store.put_scalable_target(target("worker"))  # version 0: insert, exists
    mine = created.model_copy(update={"max_capacity": 20})
    theirs = created.model_copy(update={"max_capacity": 30})
    updated = await store.put_scalable_target(mine)
    assert updated.version == 2 and updated.max_capacity == 20
    with pytest.raises(Conflict):
        await store.put_scalable_target(theirs)
    got = await store.get_scalable_target("worker")
    assert got is not None and got.max_capacity == 20 and got.version == 2


async def test_target_bookkeeping_round_trips(store: SqlStore) -> None:
    fired = {"night": T0 + timedelta(hours=13)}
    stored = await store.put_scalable_target(target(scheduled_fired=fired))
    got = await store.get_scalable_target("worker")
    assert got is not None and got.scheduled_fired == fired == stored.scheduled_fired
    assert got.created_at == T0 and got.created_at.tzinfo is not None


async def test_update_of_deregistered_target_is_not_found(store: SqlStore) -> None:
    created = await store.put_scalable_target(target())
    await store.delete_scalable_target("worker")
    with pytest.raises(NotFound):
        await store.put_scalable_target(created)
    with pytest.raises(NotFound):
        await store.delete_scalable_target("worker")


async def test_policies_need_a_target_and_upsert(store: SqlStore) -> None:
    with pytest.raises(NotFound, match="register one first"):
        await store.put_scaling_policy(policy())
    await store.put_scalable_target(target("worker"))
    await store.put_scalable_target(target("api"))
    await store.put_scaling_policy(policy("worker", "b"))
    await store.put_scaling_policy(policy("worker", "a"))
    await store.put_scaling_policy(policy("api", "cpu"))
    await store.put_scaling_policy(policy("worker", "b", target_value=99))  # replaces
    listed = await store.list_scaling_policies("worker")
    assert [p.policy_name for p in listed] == ["a", "b"]
    tt = listed[1].target_tracking_configuration
    assert tt is not None and tt.target_value == 99
    assert listed[1].policy_type == PolicyType.TARGET_TRACKING
    every = await store.list_scaling_policies()
    assert [(p.service_name, p.policy_name) for p in every] == [
        ("api", "cpu"),
        ("worker", "a"),
        ("worker", "b"),
    ]
    await store.delete_scaling_policy("worker", "a")
    with pytest.raises(NotFound):
        await store.delete_scaling_policy("worker", "a")
    assert [p.policy_name for p in await store.list_scaling_policies("worker")] == ["b"]


async def test_scheduled_actions_need_a_target_and_upsert(store: SqlStore) -> None:
    with pytest.raises(NotFound):
        await store.put_scheduled_action(action())
    await store.put_scalable_target(target())
    await store.put_scheduled_action(action(name="night", min_capacity=0))
    await store.put_scheduled_action(action(name="day", min_capacity=5))
    await store.put_scheduled_action(action(name="night", min_capacity=1, max_capacity=2))
    listed = await store.list_scheduled_actions("worker")
    assert [(a.scheduled_action_name, a.min_capacity, a.max_capacity) for a in listed] == [
        ("day", 5, None),
        ("night", 1, 2),
    ]
    assert listed[1].timezone == "Asia/Tokyo"
    assert await store.list_scheduled_actions("other") == []
    await store.delete_scheduled_action("worker", "day")
    with pytest.raises(NotFound):
        await store.delete_scheduled_action("worker", "day")


async def test_deregister_takes_policies_and_actions_keeps_activities(store: SqlStore) -> None:
    await store.put_scalable_target(target())
    await store.put_scaling_policy(policy())
    await store.put_scheduled_action(action())
    await store.append_scaling_activities([activity("worker", 1)])
    await store.delete_scalable_target("worker")
    assert await store.list_scaling_policies("worker") == []
    assert await store.list_scheduled_actions("worker") == []
    assert [a.activity_id for a in await store.list_scaling_activities("worker")] == ["act-1"]


async def test_writes_go_on_the_change_feed(store: SqlStore) -> None:
    seq = await store.last_change_seq()
    stored = await store.put_scalable_target(target())
    await store.put_scaling_policy(policy())
    await store.put_scheduled_action(action())
    await store.put_scalable_target(stored)
    await store.delete_scaling_policy("worker", "backlog")
    await store.delete_scalable_target("worker")
    await store.append_scaling_activities([activity("worker", 1)])  # not a change
    changes = await store.changes_since(seq)
    assert [(c.kind, c.key) for c in changes] == [("scaling", "worker")] * 6


async def test_activities_newest_first_with_limit(store: SqlStore) -> None:
    await store.append_scaling_activities([activity("worker", n) for n in range(5)])
    await store.append_scaling_activities([activity("api", 9)])
    await store.append_scaling_activities([])
    got = await store.list_scaling_activities("worker", limit=3)
    assert [a.activity_id for a in got] == ["act-4", "act-3", "act-2"]
    assert got[0].status == ActivityStatus.SUCCESSFUL and got[0].metric_value == 4.0
    assert got[0].at == T0 + timedelta(seconds=4)
    assert [a.activity_id for a in await store.list_scaling_activities("api")] == ["act-9"]
    assert await store.list_scaling_activities("nobody") == []


async def test_activities_keep_the_newest_per_service(store: SqlStore) -> None:
    n = MAX_ACTIVITIES_KEPT + 7
    await store.append_scaling_activities([activity("worker", i) for i in range(n)])
    await store.append_scaling_activities([activity("api", 1)])
    kept = await store.list_scaling_activities("worker", limit=10_000)
    assert len(kept) == MAX_ACTIVITIES_KEPT
    assert kept[0].activity_id == f"act-{n - 1}"
    assert kept[-1].activity_id == f"act-{n - MAX_ACTIVITIES_KEPT}"
    assert len(await store.list_scaling_activities("api")) == 1
