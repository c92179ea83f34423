"""Services under control-plane crashes and with two control planes on one database.

A monitor thread reads the tasks table straight from the database every few milliseconds
for the whole test (also while no control plane runs), so the limits are checked on the
state as stored, not on what an API happens to report.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import psutil
import pytest

from tests.conftest import _admin, pg_url
from tests.integration.test_survive_control_plane import Server

pytestmark = pytest.mark.timeout(180)

Row = tuple[str, str, str]  # desired_status, last_status, body


class Monitor:
    """Worst counts seen: live tasks (desired RUNNING, not STOPPED: ECS's count against
    maximumPercent) and healthy ones (RUNNING, and HEALTHY where checked)."""

    def __init__(self, read: Callable[[], list[Row]], checked: set[str]) -> None:
        self._read = read
        self._checked = checked
        self.most = 0
        self.least = 10**9
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.watching_low = False

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                rows = self._read()
            except Exception:
                time.sleep(0.01)
                continue
            live = [r for r in rows if r[0] == "RUNNING" and r[1] != "STOPPED"]
            healthy = 0
            for _, last, body in live:
                task = json.loads(body)
                if last != "RUNNING":
                    continue
                if task["taskDefinitionArn"] in self._checked:
                    healthy += task.get("healthStatus") == "HEALTHY"
                else:
                    healthy += 1
            self.most = max(self.most, len(live))
            if self.watching_low:
                self.least = min(self.least, healthy)
            time.sleep(0.01)

    def __enter__(self) -> Monitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def sqlite_reader(db: Path, group: str) -> Callable[[], list[Row]]:
    def read() -> list[Row]:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return conn.execute(
                "SELECT desired_status, last_status, body FROM tasks WHERE group_name = ?",
                (group,),
            ).fetchall()
        finally:
            conn.close()

    return read


class PgReader:
    """Blocking reads of one PostgreSQL database from any thread (asyncpg on a private
    event loop, one caller at a time)."""

    def __init__(self, database: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._lock = threading.Lock()
        self._conn = self._loop.run_until_complete(
            asyncpg.connect(host="127.0.0.1", user="postgres", database=database)
        )

    def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with self._lock:
            rows = self._loop.run_until_complete(self._conn.fetch(sql, *args))
        return [tuple(r) for r in rows]

    def tasks(self, group: str) -> Callable[[], list[Row]]:
        sql = "SELECT desired_status, last_status, body FROM tasks WHERE group_name = $1"
        return lambda: self.fetch(sql, group)  # type: ignore[return-value]

    def lease_holder(self) -> str | None:
        rows = self.fetch("SELECT holder, expires_at > now() FROM leases")
        return rows[0][0] if rows and rows[0][1] else None

    def close(self) -> None:
        with self._lock:
            self._loop.run_until_complete(self._conn.close())
        self._loop.close()


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def steady_on(server: Server, name: str, taskdef: str) -> Callable[[], bool]:
    def check() -> bool:
        svc = server.call("GET", f"/v1/services/{name}")
        deployments = svc["deployments"]
        return (
            len(deployments) == 1
            and deployments[0]["rolloutState"] == "COMPLETED"
            and svc["taskDefinition"] == taskdef
            and svc["runningCount"] == svc["desiredCount"]
        )

    return check


def processes(marker: str) -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter(["cmdline"]):
        if p.info["cmdline"] == ["sleep", marker]:
            out.append(p)
    return out


def kill_marked(*markers: str) -> None:
    for marker in markers:
        for p in processes(marker):
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()


def sleeper(family: str, marker: str, health: bool = False) -> dict[str, Any]:
    c: dict[str, Any] = {"name": "app", "command": ["sleep", marker], "stopTimeout": 2}
    if health:
        # healthy about two seconds after start: keeps the deployment mid-way for a while
        c["healthCheck"] = {"command": ["CMD-SHELL", "sleep 2"], "interval": 5, "retries": 2}
    return {"family": family, "containerDefinitions": [c]}


def test_kill_9_mid_deployment_resumes_within_limits(tmp_path: Path) -> None:
    server = Server(tmp_path / "home")
    server.home.mkdir()
    old, new = "3001", "3002"
    try:
        server.start()
        server.call("POST", "/v1/task-definitions", json=sleeper("api", old))
        server.call(
            "POST",
            "/v1/services",
            json={
                "serviceName": "api",
                "taskDefinition": "api",
                "desiredCount": 4,
                "deploymentConfiguration": {"minimumHealthyPercent": 50, "maximumPercent": 150},
            },
        )
        wait_until(steady_on(server, "api", "api:1"), 30, "the first deployment")
        server.call("POST", "/v1/task-definitions", json=sleeper("api", new, health=True))
        reader = sqlite_reader(server.home / "hatoba.db", "service:api")
        with Monitor(reader, checked={"api:2"}) as monitor:
            monitor.watching_low = True
            server.call("PATCH", "/v1/services/api", json={"taskDefinition": "api"})

            def mid_way() -> bool:
                tds = [(json.loads(r[2])["taskDefinitionArn"], r[1]) for r in reader()]
                started = any(td == "api:2" for td, _ in tds)
                return started and any(td == "api:1" and last != "STOPPED" for td, last in tds)

            wait_until(mid_way, 20, "the deployment to be under way")
            server.kill9()
            time.sleep(1.5)  # tasks run on with nobody watching
            server.start()
            wait_until(steady_on(server, "api", "api:2"), 60, "the deployment to finish")
            time.sleep(0.5)
        assert monitor.most <= 6, monitor.most  # floor(4 x 150%)
        assert monitor.least >= 2, monitor.least  # ceil(4 x 50%)
        # no orphan: every old process is gone, exactly the four new ones run
        wait_until(lambda: not processes(old), 10, "old processes to exit")
        assert len(processes(new)) == 4, [
            (p.pid, p.ppid(), p.parent().cmdline() if p.parent() else None) for p in processes(new)
        ] + [json.loads(r[2])["containers"][0].get("pid") for r in reader()]
        rows = reader()
        live = [r for r in rows if r[1] != "STOPPED"]
        assert len(live) == 4
        pids = {json.loads(r[2])["containers"][0]["pid"] for r in live}
        assert pids == {p.pid for p in processes(new)}
    finally:
        server.stop()
        kill_marked(old, new)


@pytest.fixture
def fresh_pg(pg_database: str) -> str:
    asyncio.run(_admin("DROP SCHEMA public CASCADE; CREATE SCHEMA public", database=pg_database))
    return pg_database


def test_two_control_planes_never_both_schedule(
    tmp_path: Path, fresh_pg: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HATOBA_SCHEDULER_LEASE_TTL", "3")
    url = pg_url(fresh_pg)
    a, b = Server(tmp_path / "a", url), Server(tmp_path / "b", url)
    for s in (a, b):
        s.home.mkdir()
    old, new = "3011", "3012"
    pg = PgReader(fresh_pg)
    reader = pg.tasks("service:pair")
    try:
        a.start()
        b.start()
        a.call("POST", "/v1/task-definitions", json=sleeper("pair", old))
        with Monitor(reader, checked=set()) as monitor:
            # at most 100%: two schedulers acting at once would overshoot at once
            config = {"minimumHealthyPercent": 0, "maximumPercent": 100}
            b.call(
                "POST",
                "/v1/services",
                json={
                    "serviceName": "pair",
                    "taskDefinition": "pair",
                    "desiredCount": 4,
                    "deploymentConfiguration": config,
                },
            )
            wait_until(steady_on(a, "pair", "pair:1"), 30, "the first deployment")
            a.call("POST", "/v1/task-definitions", json=sleeper("pair", new))
            a.call("PATCH", "/v1/services/pair", json={"taskDefinition": "pair"})
            wait_until(steady_on(b, "pair", "pair:2"), 30, "the second deployment")

            # the leader dies; the other takes over once its lease runs out
            holder = pg.lease_holder()
            ids = {s.call("GET", "/v1/health")["nodeId"]: s for s in (a, b)}
            leader = ids[holder]
            standby = b if leader is a else a
            leader.kill9()
            wait_until(lambda: pg.lease_holder() != holder, 15, "a new leader")
            leader.start()  # its node's agent comes back to run what lands there
            standby.call("POST", "/v1/services/pair/scale", json={"desiredCount": 2})
            wait_until(lambda: len(processes(new)) == 2, 30, "scale-in by the new leader")
            time.sleep(0.5)
        assert monitor.most <= 4, monitor.most
        assert len({r[2] for r in reader() if r[1] != "STOPPED"}) == 2
    finally:
        for s in (a, b):
            s.stop()
        pg.close()
        kill_marked(old, new)


@pytest.fixture(autouse=True)
def _no_stray_sleepers() -> Iterator[None]:
    yield
    kill_marked("3001", "3002", "3011", "3012")
