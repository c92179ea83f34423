"""No loss at exit: the FireLens case (300 lines x 400 chars a second, then exit at once)
loses nothing, on stdout and in a tailed file, and the task is STOPPED only after every
line is stored; the same with the control plane killed -9 during the burst."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from hatoba.api.services import ApiServices
from hatoba.controllers.tasks import RunTaskRequest
from tests.integration.conftest import container, run_to_end
from tests.integration.logs_support import api_logs, data
from tests.integration.test_survive_control_plane import Server

SECONDS = 3
BURST = """
import sys, time
seconds, path = int(sys.argv[1]), sys.argv[2]
out = open(path, "a")
n = 0
for _ in range(seconds * 10):  # 30 lines every 100 ms: 300 a second
    t = time.monotonic()
    for _ in range(30):
        line = "%05d " % n + "x" * 394  # 400 characters
        sys.stdout.write(line + "\\n")
        out.write(line + "\\n")
        n += 1
    sys.stdout.flush()
    out.flush()
    time.sleep(max(0.0, 0.1 - (time.monotonic() - t)))
"""  # and exits at once


def expected(seconds: int = SECONDS) -> list[bytes]:
    return [b"%05d " % n + b"x" * 394 for n in range(seconds * 300)]


def burst_taskdef(family: str, log_file: Path) -> dict[str, Any]:
    app = container(
        "app",
        ["python3", "-c", BURST, str(SECONDS), str(log_file)],
        logFiles=[{"path": str(log_file), "tag": "app"}],
    )
    return {"family": family, "containerDefinitions": [app]}


def by_stream(lines: list[dict[str, Any]]) -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = {}
    for o in lines:
        out.setdefault(o["stream"], []).append(data(o))
    return out


async def test_burst_then_exit_loses_nothing_and_stops_after(
    cp: ApiServices, tmp_path: Path
) -> None:
    td = burst_taskdef("burst", tmp_path / "app.log")
    task = await run_to_end(cp, "burst", td["containerDefinitions"], timeout=30)
    assert task.container("app").exit_code == 0
    got = await api_logs(cp, task.task_id)  # read the moment STOPPED is seen
    streams = by_stream(got)
    assert streams == {"stdout": expected(), "file:app": expected()}
    last = max(o["timestampNs"] for o in got)
    assert task.stopped_at is not None
    assert last <= task.stopped_at.timestamp() * 1e9  # every line stored before STOPPED


async def test_following_a_burst_ends_with_its_last_line(cp: ApiServices, tmp_path: Path) -> None:
    td = burst_taskdef("burst", tmp_path / "app.log")
    await cp.task_definitions.register(td)
    task = (await cp.tasks.run(RunTaskRequest(task_definition="burst"))).tasks[0]
    got = await api_logs(cp, task.task_id, follow=True)  # ends once STOPPED and read
    assert by_stream(got) == {"stdout": expected(), "file:app": expected()}


@pytest.mark.parametrize("down", [0.2, 4.0], ids=["restart-during-burst", "restart-after-exit"])
def test_kill_9_during_the_burst_loses_nothing(tmp_path: Path, down: float) -> None:
    server = Server(tmp_path / "home")
    server.home.mkdir()
    try:
        server.start()
        server.call("POST", "/v1/task-definitions", json=burst_taskdef("burst", tmp_path / "a.log"))
        task = server.call("POST", "/v1/tasks", json={"taskDefinition": "burst"})["tasks"][0]
        task_id = task["taskId"]
        running = server.call(
            "GET", f"/v1/tasks/{task_id}/wait", params={"status": "RUNNING", "timeout": 10}
        )
        assert running["lastStatus"] == "RUNNING"
        time.sleep(1.0)  # a third of the burst is out
        server.kill9()
        time.sleep(down)
        server.start()
        done = server.call(
            "GET", f"/v1/tasks/{task_id}/wait", params={"status": "STOPPED", "timeout": 30}
        )
        assert done["lastStatus"] == "STOPPED"
        assert done["containers"][0]["exitCode"] == 0
        assert server.http is not None
        r = server.http.get("/v1/logs", params={"target": task_id})
        got = [json.loads(line) for line in r.text.splitlines()]
        assert by_stream(got) == {"stdout": expected(), "file:app": expected()}
        stopped = datetime.fromisoformat(done["stoppedAt"]).astimezone(UTC)
        assert max(o["timestampNs"] for o in got) <= stopped.timestamp() * 1e9
    finally:
        server.stop()
