"""Services over the API: CRUD, validation naming each field, roles and scopes, on a real
control plane (its reconcile loop starts real ``sleep`` processes for scaled services)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from hatoba.api.services import ApiServices
from hatoba.model.errors import NotFound
from hatoba.model.task import LastStatus
from tests.api.conftest import ClientFor, new_token

pytestmark = pytest.mark.timeout(120)


def sleeper(family: str, seconds: int = 300) -> dict[str, Any]:
    return {
        "family": family,
        "cpu": "128",
        "memory": "16",
        "containerDefinitions": [
            {"name": "main", "command": ["sleep", str(seconds)], "stopTimeout": 1}
        ],
    }


@pytest.fixture(autouse=True)
async def no_tasks_left(cp: ApiServices) -> AsyncIterator[None]:
    """Whatever a test leaves, its services are deleted and their processes stopped."""
    yield
    for svc in await cp.services.list():
        with contextlib.suppress(NotFound):  # a DRAINING one may be gone by now
            await cp.services.delete(svc.service_name, force=True)
    await until(lambda: _all_gone(cp), timeout=30)
    for t in await cp.store.list_tasks():
        if t.last_status != LastStatus.STOPPED:
            await cp.tasks.stop(t.task_id)
            await cp.tasks.wait_for(t.task_id, LastStatus.STOPPED, 20)


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


async def test_create_describe_list_update_scale_events_tasks_delete(
    cp: ApiServices, root: httpx.AsyncClient
) -> None:
    assert (await root.post("/v1/task-definitions", json=sleeper("web"))).status_code == 200
    r = await root.post(
        "/v1/services", json={"serviceName": "web", "taskDefinition": "web", "desiredCount": 0}
    )
    assert r.status_code == 200, r.text
    created = r.json()
    assert created["serviceName"] == "web" and created["taskDefinition"] == "web:1"
    assert created["status"] == "ACTIVE" and created["schedulingStrategy"] == "REPLICA"
    (dep,) = created["deployments"]
    assert dep["status"] == "PRIMARY" and dep["id"].startswith("hd-")
    assert "tasksSeenIds" not in created and "tasksSeenUntil" not in created

    listed = (await root.get("/v1/services")).json()["services"]
    assert [s["serviceName"] for s in listed] == ["web"]
    assert "tasksSeenIds" not in listed[0]
    described = (await root.get("/v1/services/web")).json()
    assert (described["desiredCount"], described["runningCount"]) == (0, 0)

    config = {"minimumHealthyPercent": 50, "deploymentCircuitBreaker": {"enable": True}}
    r = await root.patch("/v1/services/web", json={"deploymentConfiguration": config})
    assert r.status_code == 200, r.text
    got = r.json()["deploymentConfiguration"]
    assert got["minimumHealthyPercent"] == 50 and got["deploymentCircuitBreaker"]["enable"]

    await root.post("/v1/task-definitions", json=sleeper("web", 301))
    r = await root.patch("/v1/services/web", json={"taskDefinition": "web"})
    assert r.status_code == 200, r.text
    assert r.json()["taskDefinition"] == "web:2"
    primary = [d for d in r.json()["deployments"] if d["status"] == "PRIMARY"]
    assert [d["taskDefinition"] for d in primary] == ["web:2"]

    r = await root.post("/v1/services/web/scale", json={"desiredCount": 2})
    assert r.status_code == 200 and r.json()["desiredCount"] == 2

    async def two_running() -> bool:
        live = (await root.get("/v1/services/web/tasks")).json()["tasks"]
        return len(live) == 2 and all(t["lastStatus"] == "RUNNING" for t in live)

    await until(two_running)
    described = (await root.get("/v1/services/web")).json()
    assert described["runningCount"] == 2
    live = (await root.get("/v1/services/web/tasks")).json()["tasks"]
    assert {t["group"] for t in live} == {"service:web"}
    assert {t["taskDefinitionArn"] for t in live} == {"web:2"}

    events = (await root.get("/v1/services/web/events")).json()["events"]
    assert any("deployment" in e["message"] and "started" in e["message"] for e in events)
    ids = [e["id"] for e in events]
    assert ids == sorted(ids, reverse=True)  # newest first
    one = (await root.get("/v1/services/web/events", params={"limit": 1})).json()["events"]
    assert [e["id"] for e in one] == ids[:1]
    newer = await root.get("/v1/services/web/events", params={"afterId": ids[0]})
    assert newer.json()["events"] == []
    older = await root.get("/v1/services/web/events", params={"afterId": ids[-1]})
    assert [e["id"] for e in older.json()["events"]] == ids[:-1]

    refused = await root.delete("/v1/services/web")
    assert refused.status_code == 409 and "scale it to 0" in refused.json()["error"]["message"]
    r = await root.delete("/v1/services/web", params={"force": "true"})
    assert r.status_code == 200 and r.json()["status"] == "DRAINING"

    async def gone() -> bool:
        return (await root.get("/v1/services/web")).status_code == 404

    await until(gone)
    every = await cp.store.list_tasks(group="service:web")
    assert len(every) == 2 and all(t.last_status == LastStatus.STOPPED for t in every)


async def test_missing_service_is_404_everywhere(root: httpx.AsyncClient) -> None:
    calls = [
        ("GET", "/v1/services/nope", None),
        ("PATCH", "/v1/services/nope", {"desiredCount": 1}),
        ("POST", "/v1/services/nope/scale", {"desiredCount": 1}),
        ("DELETE", "/v1/services/nope", None),
        ("GET", "/v1/services/nope/events", None),
        ("GET", "/v1/services/nope/tasks", None),
    ]
    for method, path, body in calls:
        r = await root.request(method, path, json=body)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["error"] == {"code": "NotFound", "message": "service nope not found"}


async def test_duplicate_name_is_409(root: httpx.AsyncClient) -> None:
    await root.post("/v1/task-definitions", json=sleeper("web"))
    body = {"serviceName": "web", "taskDefinition": "web", "desiredCount": 0}
    assert (await root.post("/v1/services", json=body)).status_code == 200
    again = await root.post("/v1/services", json={**body, "desiredCount": 3})
    assert again.status_code == 409, again.text
    assert again.json()["error"]["message"] == "service web already exists"
    assert (await root.get("/v1/services/web")).json()["desiredCount"] == 0


async def test_validation_names_each_field_and_applies_nothing(
    cp: ApiServices, root: httpx.AsyncClient
) -> None:
    await root.post("/v1/task-definitions", json=sleeper("web"))
    ok = {"serviceName": "web", "taskDefinition": "web", "desiredCount": 0}

    async def create(**change: Any) -> httpx.Response:
        return await root.post("/v1/services", json={**ok, **change})

    assert paths(await create(serviceName="9-starts-with-a-digit")) == ["serviceName"]
    assert paths(await create(serviceName="has space")) == ["serviceName"]
    assert paths(await create(desiredCount=-1)) == ["desiredCount"]
    assert paths(await create(launchType="FARGATE")) == ["launchType"]
    assert paths(await create(taskDefinition="nope")) == ["taskDefinition"]
    assert paths(await create(taskDefinition="web:9")) == ["taskDefinition"]
    assert paths(await create(taskDefinition="not a ref")) == ["taskDefinition"]
    bad_config = {"deploymentConfiguration": {"maximumPercent": 50, "minimumHealthyPercent": 101}}
    assert sorted(paths(await create(**bad_config))) == [
        "deploymentConfiguration.maximumPercent",
        "deploymentConfiguration.minimumHealthyPercent",
    ]
    # every controller-side problem at once, each with its path
    r = await create(
        taskDefinition="nope",
        desiredCount=1,
        placementConstraints=[{"type": "memberOf", "expression": "attribute:rack =="}],
        placementStrategy=[{"type": "binpack", "field": "disk"}],
        deploymentConfiguration={"minimumHealthyPercent": 100, "maximumPercent": 100},
    )
    assert sorted(paths(r)) == [
        "deploymentConfiguration.maximumPercent",
        "placementConstraints[0].expression",
        "placementStrategy[0].field",
        "taskDefinition",
    ]
    message = r.json()["error"]["message"]
    assert "could never replace a task" in message and "task definition nope" in message
    assert (await root.get("/v1/services")).json()["services"] == []
    assert await cp.store.list_tasks() == []

    assert (await create()).status_code == 200
    assert paths(await root.patch("/v1/services/web", json={"desiredCount": -1})) == [
        "desiredCount"
    ]
    assert paths(await root.post("/v1/services/web/scale", json={"desiredCount": -2})) == [
        "desiredCount"
    ]
    assert paths(await root.post("/v1/services/web/scale", json={})) == ["desiredCount"]
    r = await root.patch("/v1/services/web", json={"taskDefinition": "other"})
    assert paths(r) == ["taskDefinition"]
    r = await root.patch(
        "/v1/services/web",
        json={
            "desiredCount": 1,
            "deploymentConfiguration": {"minimumHealthyPercent": 100, "maximumPercent": 100},
        },
    )
    assert paths(r) == ["deploymentConfiguration.maximumPercent"]
    r = await root.patch("/v1/services/web", json={"placementConstraints": [{"type": "x"}]})
    assert paths(r) == ["placementConstraints[0].type"]
    r = await root.get("/v1/services/web/events", params={"limit": 0})
    assert paths(r) == ["limit"]
    unchanged = (await root.get("/v1/services/web")).json()
    assert unchanged["desiredCount"] == 0 and unchanged["placementConstraints"] == []
    assert len(unchanged["deployments"]) == 1


async def test_roles(cp: ApiServices, root: httpx.AsyncClient, client_for: ClientFor) -> None:
    await root.post("/v1/task-definitions", json=sleeper("web"))
    await root.post("/v1/task-definitions", json=sleeper("web", 301))
    body = {"serviceName": "web", "taskDefinition": "web:1", "desiredCount": 0}

    viewer = client_for(await new_token(root, "watcher", "viewer"))
    r = await viewer.post("/v1/services", json=body)
    assert r.status_code == 403 and "deployer" in r.json()["error"]["message"]
    assert (await viewer.get("/v1/services")).json()["services"] == []

    deployer = client_for(await new_token(root, "dep", "deployer"))
    assert (await deployer.post("/v1/services", json=body)).status_code == 200
    assert (await viewer.get("/v1/services/web")).status_code == 200
    assert (await viewer.get("/v1/services/web/events")).status_code == 200
    assert (await viewer.get("/v1/services/web/tasks")).status_code == 200
    for method, path, payload, needs in [
        ("POST", "/v1/services/web/scale", {"desiredCount": 0}, "operator"),
        ("PATCH", "/v1/services/web", {"desiredCount": 0}, "operator"),
        ("DELETE", "/v1/services/web", None, "deployer"),
    ]:
        r = await viewer.request(method, path, json=payload)
        assert r.status_code == 403 and needs in r.json()["error"]["message"], path

    operator = client_for(await new_token(root, "ops", "operator"))
    assert (await operator.post("/v1/services", json=body)).status_code == 403
    r = await operator.post("/v1/services/web/scale", json={"desiredCount": 0})
    assert r.status_code == 200, r.text
    r = await operator.patch("/v1/services/web", json={"desiredCount": 0})
    assert r.status_code == 200, r.text
    r = await operator.patch(
        "/v1/services/web", json={"desiredCount": 0, "forceNewDeployment": False}
    )
    assert r.status_code == 200, r.text
    for change in (
        {"taskDefinition": "web:2"},
        {"desiredCount": 0, "forceNewDeployment": True},
        {"deploymentConfiguration": {"maximumPercent": 150}},
        {"placementStrategy": [{"type": "random"}]},
    ):
        r = await operator.patch("/v1/services/web", json=change)
        assert r.status_code == 403, (change, r.text)
        assert "deployer" in r.json()["error"]["message"]
    assert (await operator.delete("/v1/services/web")).status_code == 403
    assert (await root.get("/v1/services/web")).json()["taskDefinition"] == "web:1"

    r = await deployer.patch("/v1/services/web", json={"taskDefinition": "web:2"})
    assert r.status_code == 200 and r.json()["taskDefinition"] == "web:2"
    assert (await deployer.delete("/v1/services/web")).status_code == 200

    entries = (await root.get("/v1/audit")).json()["entries"]
    seen = {(e["principal"], e["method"], e["path"], e["status"]) for e in entries}
    assert ("watcher", "POST", "/v1/services", 403) in seen
    assert ("ops", "PATCH", "/v1/services/web", 403) in seen
    assert ("ops", "POST", "/v1/services/web/scale", 200) in seen
    assert ("dep", "DELETE", "/v1/services/web", 200) in seen

    async def gone() -> bool:
        try:
            await cp.services.get("web")
        except NotFound:
            return True
        return False

    await until(gone)


async def test_scoped_tokens_reach_only_their_services_and_families(
    root: httpx.AsyncClient, client_for: ClientFor
) -> None:
    for family in ("web", "other"):
        await root.post("/v1/task-definitions", json=sleeper(family))
    scoped = client_for(
        await new_token(root, "webdep", "deployer", scopes=["service:web-*", "family:web"])
    )

    def body(name: str, td: str = "web") -> dict[str, Any]:
        return {"serviceName": name, "taskDefinition": td, "desiredCount": 0}

    assert (await scoped.post("/v1/services", json=body("web-a"))).status_code == 200
    r = await scoped.post("/v1/services", json=body("api"))
    assert r.status_code == 403 and "service:api" in r.json()["error"]["message"]
    r = await scoped.post("/v1/services", json=body("web-b", "other"))
    assert r.status_code == 403 and "family:other" in r.json()["error"]["message"]
    r = await scoped.patch("/v1/services/web-a", json={"taskDefinition": "other:1"})
    assert r.status_code == 403 and "family:other" in r.json()["error"]["message"]

    assert (await root.post("/v1/services", json=body("api", "other"))).status_code == 200
    for method, path, payload in [
        ("POST", "/v1/services/api/scale", {"desiredCount": 0}),
        ("PATCH", "/v1/services/api", {"desiredCount": 0}),
        ("DELETE", "/v1/services/api", None),
    ]:
        r = await scoped.request(method, path, json=payload)
        assert r.status_code == 403 and "service:api" in r.json()["error"]["message"], path
    assert (await scoped.get("/v1/services/api")).status_code == 200  # reads are not scoped

    ops = client_for(await new_token(root, "a-ops", "operator", scopes=["service:web-a"]))
    r = await ops.post("/v1/services/web-a/scale", json={"desiredCount": 0})
    assert r.status_code == 200, r.text
    assert (await ops.post("/v1/services/api/scale", json={"desiredCount": 0})).status_code == 403
    assert (await scoped.delete("/v1/services/web-a")).status_code == 200
