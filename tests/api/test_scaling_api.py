"""Autoscaling over the API on a real control plane (its scaling loop polls the real Redis
and scales a service of real ``sleep`` processes): targets, policies, scheduled actions,
describe with live metrics and the last decision, activities, the dry-run check of a whole
declaration, validation naming each field, 404s, roles and ``service:`` scopes."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from hatoba.api.services import ApiServices
from hatoba.model.errors import NotFound
from hatoba.model.task import LastStatus
from tests.api.conftest import ClientFor, new_token
from tests.scalers.conftest import REDIS_URL, _need

pytestmark = pytest.mark.timeout(120)


def sleeper(family: str) -> dict[str, Any]:
    return {
        "family": family,
        "cpu": "32",
        "memory": "16",
        "containerDefinitions": [{"name": "main", "command": ["sleep", "300"], "stopTimeout": 1}],
    }


def backlog_policy(key: str, **extra: Any) -> dict[str, Any]:
    return {
        "policyType": "TargetTrackingScaling",
        "targetTrackingConfiguration": {
            "metric": {"redisList": {"url": REDIS_URL, "key": key}, "pollInterval": 0.2},
            "targetValue": 10,
            "scaleInStabilizationSeconds": 1,
            **extra,
        },
    }


@pytest.fixture(autouse=True)
async def no_tasks_left(cp: ApiServices) -> AsyncIterator[None]:
    """Scalable targets first (or the loop would scale the services back), then services."""
    yield
    for target in await cp.store.list_scalable_targets():
        with contextlib.suppress(NotFound):
            await cp.store.delete_scalable_target(target.service_name)
    for svc in await cp.services.list():
        with contextlib.suppress(NotFound):
            await cp.services.delete(svc.service_name, force=True)
    await until(lambda: _all_gone(cp), timeout=30)
    for t in await cp.store.list_tasks():
        if t.last_status != LastStatus.STOPPED:
            await cp.tasks.stop(t.task_id)
            await cp.tasks.wait_for(t.task_id, LastStatus.STOPPED, 20)


@pytest.fixture
async def queue() -> AsyncIterator[tuple[aioredis.Redis, str]]:
    client = aioredis.from_url(_need("Redis", REDIS_URL, 6379))
    key = f"hatoba-test-{secrets.token_hex(6)}"
    try:
        yield client, key
    finally:
        await client.delete(key)
        await client.aclose()


async def _all_gone(cp: ApiServices) -> bool:
    return not await cp.services.list()


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 30) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.1)


def paths(r: httpx.Response) -> list[str]:
    assert r.status_code == 422, r.text
    body = r.json()["error"]
    assert body["code"] == "ValidationFailed"
    return [e["path"] for e in body["errors"]]


async def service(root: httpx.AsyncClient, name: str, count: int = 1, **extra: Any) -> None:
    assert (await root.post("/v1/task-definitions", json=sleeper(name))).status_code == 200
    body = {"serviceName": name, "taskDefinition": name, "desiredCount": count, **extra}
    r = await root.post("/v1/services", json=body)
    assert r.status_code == 200, r.text


async def test_target_crud_and_validation(root: httpx.AsyncClient) -> None:
    r = await root.put("/v1/services/nope/scaling", json={"minCapacity": 1, "maxCapacity": 2})
    assert r.status_code == 404, r.text
    await service(root, "worker", 0)
    assert set(paths(await root.put("/v1/services/worker/scaling", json={}))) == {
        "minCapacity",
        "maxCapacity",
    }
    r = await root.put("/v1/services/worker/scaling", json={"minCapacity": 5, "maxCapacity": 2})
    assert paths(r) == ["minCapacity"] and "above maxCapacity 2" in r.text
    r = await root.put("/v1/services/worker/scaling", json={"minCapacity": -1, "maxCpacity": 2})
    assert set(paths(r)) == {"minCapacity", "maxCpacity"}
    assert (await root.get("/v1/services/worker/scaling")).status_code == 404

    r = await root.put("/v1/services/worker/scaling", json={"minCapacity": 0, "maxCapacity": 3})
    assert r.status_code == 200, r.text
    assert (r.json()["minCapacity"], r.json()["maxCapacity"]) == (0, 3)
    r = await root.put(
        "/v1/services/worker/scaling",
        json={"maxCapacity": 4, "suspendedState": {"dynamicScalingInSuspended": True}},
    )
    target = r.json()
    assert (target["minCapacity"], target["maxCapacity"]) == (0, 4)
    assert target["suspendedState"]["dynamicScalingInSuspended"] is True
    assert (await root.get("/v1/services/worker/scaling")).json()["maxCapacity"] == 4
    listed = (await root.get("/v1/scaling")).json()["scalableTargets"]
    assert [t["serviceName"] for t in listed] == ["worker"]

    await service(root, "agentd", schedulingStrategy="DAEMON")
    r = await root.put("/v1/services/agentd/scaling", json={"minCapacity": 1, "maxCapacity": 2})
    assert paths(r) == ["serviceName"]

    r = await root.delete("/v1/services/worker/scaling")
    assert r.status_code == 200 and r.json()["maxCapacity"] == 4
    assert (await root.delete("/v1/services/worker/scaling")).status_code == 404
    assert (await root.get("/v1/scaling")).json()["scalableTargets"] == []


async def test_policies_and_scheduled_actions(
    root: httpx.AsyncClient, queue: tuple[aioredis.Redis, str]
) -> None:
    _, key = queue
    await service(root, "worker", 0)
    r = await root.put("/v1/services/worker/scaling/policies/backlog", json=backlog_policy(key))
    assert r.status_code == 404 and "no scalable target" in r.text
    await root.put("/v1/services/worker/scaling", json={"minCapacity": 0, "maxCapacity": 3})

    bad = backlog_policy(key)
    bad["targetTrackingConfiguration"]["metric"] = {"redisList": {"url": "http://x", "ky": "a"}}
    bad["targetTrackingConfiguration"]["targetValue"] = 0
    r = await root.put("/v1/services/worker/scaling/policies/backlog", json=bad)
    assert paths(r) == ["targetTrackingConfiguration.targetValue"]  # the model first
    bad["targetTrackingConfiguration"]["targetValue"] = 5
    r = await root.put("/v1/services/worker/scaling/policies/backlog", json=bad)
    assert set(paths(r)) == {
        "targetTrackingConfiguration.metric.redisList.url",
        "targetTrackingConfiguration.metric.redisList.ky",
        "targetTrackingConfiguration.metric.redisList.key",
    }
    bad = backlog_policy(key)
    del bad["targetTrackingConfiguration"]["targetValue"]
    bad["targetTrackingConfiguration"]["metric"] = {"redisList": {"url": "http://x", "key": "a"}}
    r = await root.put("/v1/services/worker/scaling/policies/backlog", json=bad)
    assert set(paths(r)) == {"targetTrackingConfiguration.targetValue"}
    bad["targetTrackingConfiguration"]["targetValue"] = 5
    r = await root.put("/v1/services/worker/scaling/policies/backlog", json=bad)
    assert paths(r) == ["targetTrackingConfiguration.metric.redisList.url"]
    step = {
        "policyType": "StepScaling",
        "stepScalingConfiguration": {
            "metric": {"cpu": {}},
            "threshold": 70,
            "comparisonOperator": "GreaterThanOrEqualToThreshold",
            "stepAdjustments": [
                {
                    "metricIntervalLowerBound": 0,
                    "metricIntervalUpperBound": 10,
                    "scalingAdjustment": 1,
                },
                {"metricIntervalLowerBound": 20, "scalingAdjustment": 2},
            ],
        },
    }
    r = await root.put("/v1/services/worker/scaling/policies/cpu", json=step)
    assert paths(r) == ["stepScalingConfiguration.stepAdjustments[1].metricIntervalLowerBound"]
    assert "gap" in r.text
    r = await root.put(
        "/v1/services/worker/scaling/policies/backlog",
        json=backlog_policy(key) | {"policyName": "other"},
    )
    assert paths(r) == ["policyName"]

    r = await root.put(
        "/v1/services/worker/scaling/policies/team/backlog", json=backlog_policy(key)
    )
    assert r.status_code == 200, r.text
    assert r.json()["policyName"] == "team/backlog"
    assert r.json()["targetTrackingConfiguration"]["metricType"] == "AverageValue"

    r = await root.put(
        "/v1/services/worker/scaling/scheduled-actions/mornings",
        json={"schedule": "cron(0 9 ? * MON-FRI *)", "timezone": "Mars/Olympus", "minCapacity": 2},
    )
    assert paths(r) == ["timezone"]
    r = await root.put(
        "/v1/services/worker/scaling/scheduled-actions/mornings",
        json={"schedule": "cron(0 9 ? * MON-FRI *)", "timezone": "Asia/Tokyo", "minCapacity": 2},
    )
    assert r.status_code == 200, r.text

    async def metric_read() -> bool:
        r = await root.get("/v1/services/worker/scaling/describe")
        return r.json().get("metrics", {}).get("team/backlog", {}).get("value") == 0

    await until(metric_read, timeout=20)
    desc = (await root.get("/v1/services/worker/scaling/describe")).json()
    assert desc["scalableTarget"]["maxCapacity"] == 3 and desc["scalingLoop"] == "leader"
    assert [p["policyName"] for p in desc["policies"]] == ["team/backlog"]
    assert desc["metrics"]["team/backlog"]["kind"] == "redisList"
    (action,) = desc["scheduledActions"]
    assert action["scheduledActionName"] == "mornings" and action["nextFireTime"]
    assert desc["desiredCount"] == 0 and "lastDecision" in desc

    r = await root.delete("/v1/services/worker/scaling/policies/team/backlog")
    assert r.status_code == 200 and r.json()["policyName"] == "team/backlog"
    assert (
        await root.delete("/v1/services/worker/scaling/policies/team/backlog")
    ).status_code == 404
    r = await root.delete("/v1/services/worker/scaling/scheduled-actions/mornings")
    assert r.status_code == 200 and r.json()["minCapacity"] == 2
    r = await root.delete("/v1/services/worker/scaling/scheduled-actions/mornings")
    assert r.status_code == 404 and "no scheduled action mornings" in r.text


async def test_backlog_scales_out_then_in_with_activities(
    root: httpx.AsyncClient, queue: tuple[aioredis.Redis, str]
) -> None:
    redis, key = queue
    await service(root, "worker", 1)
    await root.put("/v1/services/worker/scaling", json={"minCapacity": 1, "maxCapacity": 4})
    r = await root.put("/v1/services/worker/scaling/policies/backlog", json=backlog_policy(key))
    assert r.status_code == 200, r.text
    await redis.lpush(key, *[f"job-{i}" for i in range(25)])

    async def desired(n: int) -> bool:
        return (await root.get("/v1/services/worker")).json()["desiredCount"] == n

    await until(lambda: desired(3), timeout=20)  # ceil(25 / 10)
    await redis.delete(key)
    await until(lambda: desired(1), timeout=20)  # after the 1 s stabilization window
    got = (await root.get("/v1/services/worker/scaling/activities")).json()["activities"]
    moves = [(a["fromCount"], a["toCount"]) for a in got]
    assert moves[:2] == [(3, 1), (1, 3)], got
    out = got[1]
    assert out["policyName"] == "backlog" and out["metricValue"] == 25
    assert "metric 25" in out["reason"] and out["status"] == "Successful"
    limited = (await root.get("/v1/services/worker/scaling/activities?limit=1")).json()
    assert len(limited["activities"]) == 1
    assert (await root.get("/v1/services/worker/scaling/activities?limit=0")).status_code == 422
    assert (await root.get("/v1/services/nope/scaling/activities")).status_code == 404
    decision = (await root.get("/v1/services/worker/scaling/describe")).json()["lastDecision"]
    assert decision["desired"] == 1 and decision["votes"][0]["policy"] == "backlog"


async def test_validate_a_whole_declaration(root: httpx.AsyncClient) -> None:
    good = {
        "minCapacity": 1,
        "maxCapacity": 6,
        "policies": [{"policyName": "backlog", **backlog_policy("jobs")}],
        "scheduledActions": [
            {"scheduledActionName": "night", "schedule": "cron(0 22 * * ? *)", "maxCapacity": 2}
        ],
    }
    r = await root.post("/v1/scaling/validate", json=good)
    assert r.status_code == 200 and r.json() == {"valid": True}
    bad = dict(good)
    bad["minCapacity"] = 7
    bad["policies"] = [
        {"policyName": "backlog", **backlog_policy("")},
        {"policyName": "backlog", "policyType": "StepScaling"},
    ]
    bad["scheduledActions"] = [{"scheduledActionName": "night", "schedule": "cron(0 25 * * ? *)"}]
    assert set(paths(await root.post("/v1/scaling/validate", json=bad))) == {
        "minCapacity",
        "policies[0].targetTrackingConfiguration.metric.redisList.key",
        "policies[1].policyName",
        "policies[1].stepScalingConfiguration",
        "scheduledActions[0].schedule",
        "scheduledActions[0].minCapacity",
    }
    assert paths(await root.post("/v1/scaling/validate", json={"maxCapacity": 1})) == [
        "minCapacity"
    ]


async def test_roles_and_scopes(root: httpx.AsyncClient, client_for: ClientFor) -> None:
    await service(root, "worker", 0)
    await service(root, "web", 0)
    body = {"minCapacity": 0, "maxCapacity": 2}
    viewer = client_for(await new_token(root, "v", "viewer"))
    assert (await viewer.put("/v1/services/worker/scaling", json=body)).status_code == 403
    operator = client_for(await new_token(root, "o", "operator"))
    r = await operator.put("/v1/services/worker/scaling", json=body)
    assert r.status_code == 403 and "deployer" in r.text
    scoped = client_for(await new_token(root, "s", "deployer", scopes=["service:worker"]))
    assert (await scoped.put("/v1/services/worker/scaling", json=body)).status_code == 200
    r = await scoped.put("/v1/services/web/scaling", json=body)
    assert r.status_code == 403 and "service:web" in r.text
    r = await scoped.put("/v1/services/web/scaling/policies/p", json=backlog_policy("k"))
    assert r.status_code == 403
    assert (await scoped.delete("/v1/services/web/scaling")).status_code == 403
    assert (await viewer.get("/v1/services/worker/scaling/describe")).status_code == 200
    assert (await viewer.get("/v1/scaling")).status_code == 200
    assert (await viewer.post("/v1/scaling/validate", json=body)).status_code == 403
