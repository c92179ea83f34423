"""kill -9 of the control plane loses no task, exit code or log line."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import _admin, pg_url

SERVER = (
    "import asyncio, logging; logging.basicConfig(level=logging.INFO);"
    "from hatoba.config import Settings; from hatoba.server import run_server;"
    "run_server(Settings.from_env())"
)


class Server:
    def __init__(self, home: Path, database_url: str | None = None) -> None:
        self.home = home
        self.database_url = database_url
        self.proc: subprocess.Popen[bytes] | None = None
        self.http: httpx.Client | None = None

    def start(self) -> None:
        env = {**os.environ, "HATOBA_HOME": str(self.home), "HATOBA_PORT": "0"}
        if self.database_url:
            env["HATOBA_DATABASE_URL"] = self.database_url
        (self.home / "server.json").unlink(missing_ok=True)
        with open(self.home.parent / "server.log", "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-c", SERVER], env=env, stderr=log)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                info = json.loads((self.home / "server.json").read_text())
                if info["pid"] == self.proc.pid:
                    break
            except (OSError, ValueError, KeyError):
                pass
            assert self.proc.poll() is None, "server died"
            time.sleep(0.05)
        else:
            raise AssertionError("server did not start")
        token = (self.home / "token").read_text().strip()
        self.http = httpx.Client(
            base_url=info["url"], headers={"Authorization": f"Bearer {token}"}, timeout=60
        )

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        if self.http:
            self.http.close()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(15)
        if self.http:
            self.http.close()

    def call(self, method: str, path: str, **kw: Any) -> Any:
        assert self.http is not None
        r = self.http.request(method, path, **kw)
        assert r.status_code < 300, r.text
        return r.json()


@pytest.fixture(params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    url = None
    if request.param == "postgresql":
        name = request.getfixturevalue("pg_database")
        asyncio.run(_admin("DROP SCHEMA public CASCADE; CREATE SCHEMA public", database=name))
        url = pg_url(name)
    s = Server(tmp_path / "home", url)
    s.home.mkdir()
    yield s
    s.stop()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_kill_9_loses_no_task_exit_code_or_log_line(server: Server, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    line = "x" * 400
    script = (
        f'for i in $(seq 1 300); do echo "$i {line}"; done; '
        f"while [ ! -f {gate} ]; do sleep 0.05; done; "
        f'for i in $(seq 301 600); do echo "$i {line}"; done; exit 7'
    )
    server.start()
    server.call(
        "POST",
        "/v1/task-definitions",
        json={
            "family": "burst",
            "containerDefinitions": [{"name": "app", "command": script, "shell": True}],
        },
    )
    server.call(
        "POST",
        "/v1/task-definitions",
        json={
            "family": "longrunner",
            "containerDefinitions": [{"name": "app", "command": ["sleep", "300"]}],
        },
    )
    burst = server.call("POST", "/v1/tasks", json={"taskDefinition": "burst"})["tasks"][0]
    longrunner = server.call("POST", "/v1/tasks", json={"taskDefinition": "longrunner"})["tasks"][0]
    for t in (burst, longrunner):
        got = server.call(
            "GET", f"/v1/tasks/{t['taskId']}/wait", params={"status": "RUNNING", "timeout": 10}
        )
        assert got["lastStatus"] == "RUNNING"
    burst = server.call("GET", f"/v1/tasks/{burst['taskId']}")
    longrunner = server.call("GET", f"/v1/tasks/{longrunner['taskId']}")

    server.kill9()
    # the tasks keep running without a control plane...
    assert alive(burst["containers"][0]["pid"])
    assert alive(longrunner["containers"][0]["pid"])
    # ...and the burst task finishes while nobody watches
    gate.touch()
    deadline = time.monotonic() + 10
    while alive(burst["containers"][0]["pid"]) and time.monotonic() < deadline:
        time.sleep(0.05)

    server.start()
    done = server.call(
        "GET", f"/v1/tasks/{burst['taskId']}/wait", params={"status": "STOPPED", "timeout": 20}
    )
    assert done["lastStatus"] == "STOPPED"
    assert done["containers"][0]["exitCode"] == 7
    assert done["stopCode"] == "EssentialContainerExited"
    r = server.http.get(f"/v1/tasks/{burst['taskId']}/logs")  # type: ignore[union-attr]
    lines = [json.loads(x)["message"] for x in r.text.splitlines()]
    assert lines == [f"{i} {line}" for i in range(1, 601)]

    # the other task was re-adopted: still RUNNING, and stops normally
    again = server.call("GET", f"/v1/tasks/{longrunner['taskId']}")
    assert again["lastStatus"] == "RUNNING"
    server.call("POST", f"/v1/tasks/{longrunner['taskId']}/stop", json={"reason": "test over"})
    stopped = server.call(
        "GET", f"/v1/tasks/{longrunner['taskId']}/wait", params={"status": "STOPPED", "timeout": 20}
    )
    assert stopped["containers"][0]["exitCode"] == 143
    assert not alive(longrunner["containers"][0]["pid"])
