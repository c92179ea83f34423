"""The REST API over real HTTP semantics (ASGI in-process), on a real control plane."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from hatoba.api.app import create_app
from hatoba.api.services import ApiServices
from hatoba.model.task import LastStatus


@pytest.fixture
async def http(cp: ApiServices) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(cp))
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://hatoba",
        headers={"Authorization": f"Bearer {cp.token}"},
    ) as client:
        yield client


TASKDEF = {
    "family": "api",
    "containerDefinitions": [
        {"name": "app", "command": ["sh", "-c", "printf 'ok\\n\\377\\376\\n'; printf tail"]}
    ],
}

MUTATIONS = [
    ("POST", "/v1/task-definitions", TASKDEF),
    ("DELETE", "/v1/task-definitions/api:1", None),
    ("POST", "/v1/tasks", {"taskDefinition": "api"}),
    ("POST", "/v1/tasks/abcdef/stop", {}),
]


@pytest.mark.parametrize(("method", "path", "body"), MUTATIONS)
@pytest.mark.parametrize("token", [None, "wrong"])
async def test_mutations_need_the_token_and_change_nothing(
    cp: ApiServices, method: str, path: str, body: object, token: str | None
) -> None:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    transport = httpx.ASGITransport(app=create_app(cp))
    async with httpx.AsyncClient(transport=transport, base_url="http://hatoba") as anon:
        r = await anon.request(method, path, json=body, headers=headers)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "Unauthorized"
    assert await cp.store.list_task_definitions() == []
    assert await cp.store.list_tasks() == []


async def test_health_and_openapi(http: httpx.AsyncClient) -> None:
    async with httpx.AsyncClient(transport=http._transport, base_url="http://hatoba") as anon:
        assert (await anon.get("/v1/health")).json()["status"] == "ok"
    spec = (await http.get("/openapi.json")).json()
    assert "/v1/tasks" in spec["paths"] and "/v1/task-definitions" in spec["paths"]


async def test_invalid_task_definition_names_every_field(http: httpx.AsyncClient) -> None:
    bad = {
        "family": "bad family",
        "containerDefinitions": [{"name": "app", "command": ["true"], "memory": 2, "comand": []}],
    }
    r = await http.post("/v1/task-definitions", json=bad)
    assert r.status_code == 422
    paths = {e["path"] for e in r.json()["error"]["errors"]}
    assert {"family", "containerDefinitions[0].memory", "containerDefinitions[0].comand"} <= paths
    assert (await http.get("/v1/task-definitions")).json()["taskDefinitions"] == []


async def test_bad_run_request_names_the_field(http: httpx.AsyncClient) -> None:
    await http.post("/v1/task-definitions", json=TASKDEF)
    r = await http.post("/v1/tasks", json={"taskDefinition": "api", "count": 0})
    assert r.status_code == 422
    assert r.json()["error"]["errors"][0]["path"] == "count"
    r = await http.post(
        "/v1/tasks",
        json={"taskDefinition": "api", "overrides": {"containerOverrides": [{"name": "nope"}]}},
    )
    assert r.status_code == 422
    assert "overrides.containerOverrides[0].name" in r.text
    r = await http.post("/v1/tasks", json={"taskDefinition": "api", "bogus": 1})
    assert r.status_code == 422 and "bogus" in r.text
    assert (await http.get("/v1/tasks")).json()["tasks"] == []


async def test_logs_are_byte_exact_ndjson(cp: ApiServices, http: httpx.AsyncClient) -> None:
    await http.post("/v1/task-definitions", json=TASKDEF)
    task = (await http.post("/v1/tasks", json={"taskDefinition": "api"})).json()["tasks"][0]
    r = await http.get(f"/v1/tasks/{task['taskId']}/logs", params={"follow": "true"})
    lines = [json.loads(x) for x in r.text.splitlines()]
    assert lines[0]["message"] == "ok"
    assert base64.b64decode(lines[1]["messageBase64"]) == b"\xff\xfe"
    assert lines[2] == {**lines[2], "message": "tail", "eol": False}
    done = await cp.tasks.wait_for(task["taskId"], LastStatus.STOPPED, 10)
    assert done.exit_code == 0


async def test_export_round_trips_ignored_fields(http: httpx.AsyncClient) -> None:
    td = {**TASKDEF, "networkMode": "awsvpc", "requiresCompatibilities": ["FARGATE"]}
    r = await http.post("/v1/task-definitions", json=td)
    warned = {w["path"] for w in r.json()["warnings"]}
    assert {"networkMode", "requiresCompatibilities"} <= warned
    exported = (await http.get("/v1/task-definitions/api/export")).json()
    assert exported["networkMode"] == "awsvpc"
    assert exported["requiresCompatibilities"] == ["FARGATE"]
    assert (
        exported["containerDefinitions"][0]["command"]
        == TASKDEF["containerDefinitions"][0]["command"]
    )  # type: ignore[index]


async def test_deregistered_revision_cannot_run(http: httpx.AsyncClient) -> None:
    await http.post("/v1/task-definitions", json=TASKDEF)
    assert (await http.delete("/v1/task-definitions/api:1")).json()["status"] == "INACTIVE"
    r = await http.post("/v1/tasks", json={"taskDefinition": "api:1"})
    assert r.status_code == 422 and "INACTIVE" in r.text
    r = await http.post("/v1/tasks", json={"taskDefinition": "api"})
    assert r.status_code == 404
