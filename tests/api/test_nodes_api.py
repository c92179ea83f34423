"""Nodes over the API: list/describe with live reservations, drain/activate (operator,
audited), and RunTask's placement options against the node's attributes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hatoba.api.app import create_app
from hatoba.api.services import ApiServices
from hatoba.config import Settings
from hatoba.model.task import LastStatus
from hatoba.server import control_plane
from tests.api.conftest import ClientFor, new_token

SLEEPER = {
    "family": "sleeper",
    "cpu": "256",
    "memory": "64",
    "containerDefinitions": [{"name": "app", "command": ["sleep", "30"], "stopTimeout": 1}],
}


async def run(client: httpx.AsyncClient, **body: Any) -> httpx.Response:
    return await client.post("/v1/tasks", json={"taskDefinition": "sleeper", **body})


async def test_list_and_describe_show_the_live_reservation(
    cp: ApiServices, root: httpx.AsyncClient
) -> None:
    node_id = cp.agent.node_id
    listed = (await root.get("/v1/nodes")).json()["nodes"]
    assert [n["nodeId"] for n in listed] == [node_id]
    assert listed[0]["status"] == "ACTIVE"
    assert {"os", "arch", "hostname", "ecs.os-type", "ecs.cpu-architecture"} <= set(
        listed[0]["attributes"]
    )
    assert listed[0]["cpu"] % 1024 == 0 and listed[0]["memory"] > 0
    assert (await root.post("/v1/task-definitions", json=SLEEPER)).status_code == 200
    started = (await run(root)).json()["tasks"][0]
    node = (await root.get(f"/v1/nodes/{node_id}")).json()
    assert (node["usedCpu"], node["usedMemory"], node["runningTasksCount"]) == (256, 64, 1)
    await cp.tasks.stop(started["taskId"])
    await cp.tasks.wait_for(started["taskId"], LastStatus.STOPPED, 20)
    node = (await root.get(f"/v1/nodes/{node_id}")).json()
    assert (node["usedCpu"], node["usedMemory"], node["runningTasksCount"]) == (0, 0, 0)
    missing = await root.get("/v1/nodes/node-nope")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "NotFound"


async def test_drain_refuses_new_tasks_and_activate_takes_them_again(
    cp: ApiServices, root: httpx.AsyncClient, client_for: ClientFor
) -> None:
    node_id = cp.agent.node_id
    await root.post("/v1/task-definitions", json=SLEEPER)
    running = (await run(root)).json()["tasks"][0]
    viewer = client_for(await new_token(root, "watcher", "viewer"))
    refused = await viewer.post(f"/v1/nodes/{node_id}/drain")
    assert refused.status_code == 403 and "operator" in refused.json()["error"]["message"]
    assert (await viewer.get(f"/v1/nodes/{node_id}")).json()["status"] == "ACTIVE"

    operator = client_for(await new_token(root, "ops", "operator"))
    drained = await operator.post(f"/v1/nodes/{node_id}/drain")
    assert drained.status_code == 200 and drained.json()["status"] == "DRAINING"
    assert (await operator.post(f"/v1/nodes/{node_id}/drain")).json()["status"] == "DRAINING"
    body = (await run(operator)).json()
    assert body["tasks"] == []
    (failure,) = body["failures"]
    assert failure["reason"] == "INACTIVE_NODE"
    assert failure["detail"].startswith("INACTIVE_NODE on 1 node (e.g. " + node_id)
    # the task already running keeps running on the draining node
    task = await cp.tasks.wait_for(running["taskId"], LastStatus.RUNNING, 20)
    assert task.last_status == LastStatus.RUNNING and task.desired_status.value == "RUNNING"

    activated = await operator.post(f"/v1/nodes/{node_id}/activate")
    assert activated.json()["status"] == "ACTIVE"
    again = (await run(operator)).json()
    assert again["failures"] == [] and len(again["tasks"]) == 1
    assert (await operator.post("/v1/nodes/node-nope/drain")).status_code == 404

    entries = (await root.get("/v1/audit")).json()["entries"]
    seen = [(e["principal"], e["path"], e["status"]) for e in entries if "/nodes/" in e["path"]]
    assert ("watcher", f"/v1/nodes/{node_id}/drain", 403) in seen
    assert ("ops", f"/v1/nodes/{node_id}/drain", 200) in seen
    assert ("ops", f"/v1/nodes/{node_id}/activate", 200) in seen
    for t in (running, *again["tasks"]):
        await cp.tasks.stop(t["taskId"])


@pytest.fixture
async def racked(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(home=tmp_path / "home", node_attributes={"rack": "r1", "disk": "ssd"})
    async with (
        control_plane(settings) as cp,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(cp)),
            base_url="http://hatoba",
            headers={"Authorization": f"Bearer {cp.token}"},
        ) as client,
    ):
        await client.post("/v1/task-definitions", json=SLEEPER)
        yield client
        for t in await cp.tasks.list_tasks():
            await cp.tasks.stop(t.task_id)


async def test_member_of_a_custom_attribute(racked: httpx.AsyncClient) -> None:
    (node,) = (await racked.get("/v1/nodes")).json()["nodes"]
    assert node["attributes"]["rack"] == "r1" and node["attributes"]["disk"] == "ssd"
    ok = await run(
        racked,
        placementConstraints=[{"type": "memberOf", "expression": "attribute:rack == r1"}],
        placementStrategy=[{"type": "spread", "field": "attribute:rack"}],
    )
    assert ok.status_code == 200 and len(ok.json()["tasks"]) == 1, ok.text
    no = (
        await run(
            racked,
            placementConstraints=[{"type": "memberOf", "expression": "attribute:rack in [r2, r3]"}],
        )
    ).json()
    assert no["tasks"] == []
    assert no["failures"][0]["reason"].startswith("CONSTRAINT:memberOf")
    assert "on 1 node" in no["failures"][0]["detail"]


async def test_distinct_instance_counts_the_group(racked: httpx.AsyncClient) -> None:
    distinct = [{"type": "distinctInstance"}]
    first = (await run(racked, group="batch:x", placementConstraints=distinct)).json()
    assert len(first["tasks"]) == 1 and first["tasks"][0]["group"] == "batch:x"
    second = (await run(racked, group="batch:x", placementConstraints=distinct)).json()
    assert second["failures"][0]["reason"] == "CONSTRAINT:distinctInstance"
    other = (await run(racked, group="batch:y", placementConstraints=distinct)).json()
    assert len(other["tasks"]) == 1


async def test_bad_placement_options_are_422_with_paths_and_create_nothing(
    cp: ApiServices, root: httpx.AsyncClient
) -> None:
    await root.post("/v1/task-definitions", json=SLEEPER)
    r = await run(
        root,
        count=0,
        placementConstraints=[
            {"type": "memberOf", "expression": "attribute:rack =="},
            {"type": "sameRack"},
        ],
        placementStrategy=[{"type": "binpack", "field": "disk"}],
    )
    assert r.status_code == 422, r.text
    paths = [e["path"] for e in r.json()["error"]["errors"]]
    assert "placementConstraints[0].expression" in paths
    assert "placementConstraints[1].type" in paths
    assert "placementStrategy[0].field" in paths
    assert "count" in paths
    assert await cp.store.list_tasks() == []
