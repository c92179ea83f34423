"""Task scale-in protection end to end: a real process task protects itself through the
agent endpoint (HATOBA_AGENT_URI, HATOBA_TASK_TOKEN, real HTTP), and a scale-in stops the
other tasks gracefully (SIGTERM) while it keeps running until its protection ends."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from hatoba.api.app import create_app
from hatoba.api.services import ApiServices
from hatoba.config import Settings
from hatoba.model.service import ServiceSpec
from hatoba.model.task import LastStatus, StopCode, Task
from hatoba.server import control_plane

pytestmark = pytest.mark.timeout(120)

# The first task to create the marker protects itself and reports what the endpoint said;
# every task writes a file when it gets SIGTERM (a graceful stop), then exits.
WORKER = r"""
import json, os, signal, sys, time, urllib.request
marker = sys.argv[1]
me = os.environ["HATOBA_TASK_ID"]
def term(*_):
    open(f"{marker}.term.{me}", "w").close()
    sys.exit(0)
signal.signal(signal.SIGTERM, term)
try:
    fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
except FileExistsError:
    fd = None
if fd is not None:
    os.write(fd, me.encode())
    os.close(fd)
    uri = os.environ["HATOBA_AGENT_URI"] + "/v1/task-protection/" + me
    auth = {"Authorization": "Bearer " + os.environ["HATOBA_TASK_TOKEN"]}
    body = json.dumps({"ProtectionEnabled": True, "ExpiresInMinutes": 10}).encode()
    put = urllib.request.Request(uri, data=body, method="PUT",
                                 headers=auth | {"Content-Type": "application/json"})
    first = json.loads(urllib.request.urlopen(put, timeout=10).read())
    second = json.loads(urllib.request.urlopen(urllib.request.Request(uri, headers=auth)).read())
    with open(marker + ".tmp", "w") as f:
        json.dump({"put": first, "get": second, "uri": os.environ["HATOBA_AGENT_URI"]}, f)
    os.rename(marker + ".tmp", marker + ".out")
while True:
    time.sleep(1)
"""


@dataclass
class Served:
    cp: ApiServices
    url: str


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    async with control_plane(Settings(home=tmp_path / "home"), agent_uri=url) as cp:
        server = uvicorn.Server(
            uvicorn.Config(create_app(cp), log_level="warning", lifespan="off", access_log=False)
        )
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            for _ in range(1000):  # uvicorn has no "started" event to wait on
                if server.started:
                    break
                await asyncio.sleep(0.01)
            yield Served(cp, url)
        finally:
            server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(serving, 10)
    sock.close()


async def live_tasks(cp: ApiServices, name: str) -> list[Task]:
    return await cp.services.tasks(name)


async def wait_for(check, timeout: float = 30, what: str = "condition"):  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def test_a_busy_task_protects_itself_and_scale_in_spares_it(
    served: Served, tmp_path: Path
) -> None:
    cp, url = served.cp, served.url
    marker = tmp_path / "protected"
    await cp.task_definitions.register(
        {
            "family": "worker",
            "containerDefinitions": [
                {
                    "name": "main",
                    "command": [sys.executable, "-c", WORKER, str(marker)],
                    "memory": 32,
                    "stopTimeout": 5,
                }
            ],
        }
    )
    await cp.services.create(
        ServiceSpec(service_name="worker", task_definition="worker", desired_count=3)
    )
    out = marker.with_name(marker.name + ".out")

    async def reported() -> bool:
        return out.exists()

    await wait_for(reported, what="the task's protection call")
    protected_id = marker.read_text()
    said = json.loads(out.read_text())
    assert said["uri"] == url
    assert said["put"]["protection"]["taskId"] == protected_id
    assert said["put"]["protection"]["protectionEnabled"] is True
    assert said["get"]["protection"] == said["put"]["protection"]
    stored = await cp.store.get_task(protected_id)
    assert stored is not None and stored.protected_until is not None

    async def three_running() -> list[Task] | None:
        ts = await live_tasks(cp, "worker")
        ok = len(ts) == 3 and all(t.last_status == LastStatus.RUNNING for t in ts)
        return ts if ok else None

    others = [t.task_id for t in await wait_for(three_running) if t.task_id != protected_id]

    await cp.services.scale("worker", 1)

    async def only_protected_left() -> bool:
        ts = await live_tasks(cp, "worker")
        return [t.task_id for t in ts] == [protected_id]

    await wait_for(only_protected_left, what="the unprotected tasks to stop")
    for task_id in others:
        t = await cp.store.get_task(task_id)
        assert t is not None and t.stop_code == StopCode.SERVICE_SCHEDULER_INITIATED
        assert marker.with_name(f"{marker.name}.term.{task_id}").exists()  # SIGTERM, graceful
        assert t.containers[0].exit_code == 0

    await cp.services.scale("worker", 0)  # protected: it stays above the desired count
    await asyncio.sleep(1.5)
    assert [t.task_id for t in await live_tasks(cp, "worker")] == [protected_id]

    assert cp.task_tokens is not None
    token = cp.task_tokens.token(protected_id)
    endpoint = f"{url}/v1/task-protection/{protected_id}"
    async with httpx.AsyncClient() as client:
        wrong = await client.put(
            endpoint,
            json={"protectionEnabled": False},
            headers={"Authorization": f"Bearer {cp.task_tokens.token(others[0])}"},
        )
        assert wrong.status_code == 401  # another task's token speaks for that task only
        bad = await client.put(
            endpoint,
            json={"ExpiresInMinutes": 5000, "ProtectionEnabled": True},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert bad.status_code == 422
        assert bad.json()["error"]["errors"][0]["path"] == "expiresInMinutes"
        done = await client.put(
            endpoint,
            json={"protectionEnabled": False},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert done.status_code == 200, done.text
        assert done.json() == {"protection": {"taskId": protected_id, "protectionEnabled": False}}

    async def none_left() -> bool:
        return await live_tasks(cp, "worker") == []

    await wait_for(none_left, what="the task to stop once unprotected")
    assert marker.with_name(f"{marker.name}.term.{protected_id}").exists()


async def test_operators_can_protect_a_task_with_an_api_token(served: Served) -> None:
    cp, url = served.cp, served.url
    await cp.task_definitions.register(
        {
            "family": "sleeper",
            "containerDefinitions": [{"name": "main", "command": ["sleep", "60"], "memory": 16}],
        }
    )
    await cp.services.create(
        ServiceSpec(service_name="sleeper", task_definition="sleeper", desired_count=1)
    )

    async def one() -> list[Task] | None:
        ts = await live_tasks(cp, "sleeper")
        return ts or None

    task = (await wait_for(one))[0]
    endpoint = f"{url}/v1/task-protection/{task.task_id[:12]}"  # a prefix works for operators
    async with httpx.AsyncClient() as client:
        anonymous = await client.get(endpoint)
        assert anonymous.status_code == 401
        auth = {"Authorization": f"Bearer {cp.token}"}
        put = await client.put(endpoint, json={"protectionEnabled": True}, headers=auth)
        assert put.status_code == 200, put.text
        assert put.json()["protection"]["taskId"] == task.task_id
        got = await client.get(endpoint, headers=auth)
        assert got.json()["protection"]["protectionEnabled"] is True
    await cp.services.scale("sleeper", 0)
    await asyncio.sleep(1.5)
    assert [t.task_id for t in await live_tasks(cp, "sleeper")] == [task.task_id]
    await cp.scaling.set_task_protection(task.task_id, False)  # type: ignore[union-attr]

    async def gone() -> bool:
        return await live_tasks(cp, "sleeper") == []

    await wait_for(gone)
