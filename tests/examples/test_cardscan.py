"""The cardscan example app (examples/cardscan), its scripts run as real processes against a
real SQLite file: no hatoba involved, except that hatoba's own loader reads the app file."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hatoba.model.appfile import load_app_file

APP = Path(__file__).resolve().parents[2] / "examples" / "cardscan"
DEADLINE = 10.0

SAMPLE_TEXT = "Aiko Tanaka\nHatoba Logistics Inc.\naiko@hatoba.example\nTel +81 3-1234-5678"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], Any], what: str, timeout: float = DEADLINE) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.05)


def http(method: str, url: str, body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


class App:
    """Runs the example's scripts on one database file; stops what it started."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.db = tmp_path / "cardscan.db"
        self.procs: list[tuple[subprocess.Popen[bytes], Path]] = []

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "CARDSCAN_DB": str(self.db), **extra}

    def run(self, script: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(APP / script), *args],
            env=self.env(**env),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    def migrate(self) -> None:
        done = self.run("migrate.py")
        assert done.returncode == 0, done.stdout + done.stderr

    def start(self, script: str, **env: str) -> subprocess.Popen[bytes]:
        log = self.tmp / f"{script}.{len(self.procs)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, str(APP / script)],
                env=self.env(**env),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.procs.append((proc, log))
        return proc

    def log(self, proc: subprocess.Popen[bytes]) -> str:
        return next(log for p, log in self.procs if p is proc).read_text()

    def wait_for_log(self, proc: subprocess.Popen[bytes], text: str) -> None:
        def seen() -> bool:
            assert proc.poll() is None, f"exited {proc.returncode}:\n{self.log(proc)}"
            return text in self.log(proc)

        wait_until(seen, f"{text!r} in the log")

    def start_api(self, port: int, **env: str) -> subprocess.Popen[bytes]:
        proc = self.start("api.py", CARDSCAN_PORT=str(port), **env)
        self.wait_for_log(proc, "listening on")
        return proc

    def stop(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int:
        proc.send_signal(sig)
        return proc.wait(timeout=DEADLINE)

    def close(self) -> None:
        for proc, _ in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    def sql(self, query: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        conn = sqlite3.connect(self.db, timeout=5, isolation_level=None)
        conn.row_factory = sqlite3.Row
        try:
            return conn.execute(query, params).fetchall()
        finally:
            conn.close()

    def add_cards(self, count: int) -> None:
        conn = sqlite3.connect(self.db, timeout=5)
        with conn:
            conn.executemany(
                "INSERT INTO cards (name, payload) VALUES (?, ?)",
                [(f"card-{i}.jpg", SAMPLE_TEXT) for i in range(count)],
            )
        conn.close()


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    application = App(tmp_path)
    try:
        yield application
    finally:
        application.close()


def test_migrate_creates_the_schema_once_and_is_idempotent(app: App) -> None:
    first = app.run("migrate.py")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "migrated to schema version 2" in first.stdout
    second = app.run("migrate.py")
    assert second.returncode == 0
    assert "already at schema version 2" in second.stdout
    assert [r["version"] for r in app.sql("SELECT version FROM schema_version")] == [1, 2]
    columns = {r["name"] for r in app.sql("PRAGMA table_info(cards)")}
    assert {"id", "submitted_at", "status", "payload", "result", "worker", "attempts"} <= columns
    assert "updated_at" in columns


def test_migrate_fails_clearly(app: App) -> None:
    unset = subprocess.run(
        [sys.executable, str(APP / "migrate.py")],
        env={k: v for k, v in os.environ.items() if k != "CARDSCAN_DB"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert unset.returncode == 2
    assert "CARDSCAN_DB is not set" in unset.stdout
    bad = app.run("migrate.py", CARDSCAN_DB=str(app.tmp / "no" / "such" / "dir.db"))
    assert bad.returncode == 1
    assert "cannot migrate" in bad.stdout
    assert "directory exist" in bad.stdout


def test_api_accepts_validates_lists_and_reports(app: App) -> None:
    app.migrate()
    port = free_port()
    api = app.start_api(port)
    base = f"http://127.0.0.1:{port}"

    assert http("GET", f"{base}/healthz") == (200, {"status": "ok", "schema_version": 2})
    status, created = http("POST", f"{base}/cards", {"name": "a.jpg", "text": SAMPLE_TEXT})
    assert status == 202
    assert created["status"] == "queued"
    assert http("POST", f"{base}/cards", {"name": "b.jpg", "text": "x"})[0] == 202

    for body, field in [
        ({"name": "a.jpg"}, "text"),
        ({"text": "x"}, "name"),
        ({"name": 3, "text": "x"}, "name"),
        ({"name": "a.jpg", "text": "   "}, "text"),
        ({"name": "a.jpg", "text": "x", "colour": "red"}, "colour"),
    ]:
        status, error = http("POST", f"{base}/cards", body)
        assert (status, error["field"]) == (400, field), error
        assert error["error"].startswith(f"{field}: ")
    status, error = http("POST", f"{base}/cards", raw=b"{not json")
    assert status == 400
    assert "not valid JSON" in error["error"]

    status, card = http("GET", f"{base}/cards/{created['id']}")
    assert status == 200
    assert (card["id"], card["name"], card["status"]) == (created["id"], "a.jpg", "queued")
    assert card["text"] == SAMPLE_TEXT
    assert http("GET", f"{base}/cards/999999")[0] == 404

    status, listed = http("GET", f"{base}/cards?status=queued")
    assert status == 200
    assert [c["name"] for c in listed["cards"]] == ["a.jpg", "b.jpg"]
    assert http("GET", f"{base}/cards?status=done") == (200, {"cards": []})
    status, error = http("GET", f"{base}/cards?status=lost")
    assert (status, error["field"]) == (400, "status")
    status, error = http("GET", f"{base}/cards?limit=0")
    assert (status, error["field"]) == (400, "limit")

    assert http("GET", f"{base}/stats") == (
        200,
        {"queued": 2, "working": 0, "done": 0, "failed": 0},
    )

    assert app.stop(api) == 0
    log = app.log(api)
    assert re.search(r"POST /cards 202 [\d.]+ms", log)
    assert "GET /cards?status=lost 400" in log
    assert "stopped" in log


def test_health_is_503_until_the_schema_is_migrated(app: App) -> None:
    port = free_port()
    app.start_api(port)
    status, health = http("GET", f"http://127.0.0.1:{port}/healthz")
    assert status == 503
    assert "run migrate.py" in health["error"]
    down = app.run("healthcheck.py", CARDSCAN_PORT=str(port))
    assert down.returncode == 1
    assert "503" in down.stderr

    app.migrate()
    assert http("GET", f"http://127.0.0.1:{port}/healthz")[0] == 200
    assert app.run("healthcheck.py", CARDSCAN_PORT=str(port)).returncode == 0
    assert app.run("healthcheck.py", "--port", str(free_port())).returncode == 1


def test_two_api_processes_share_one_port(app: App) -> None:
    app.migrate()
    port = free_port()
    first = app.start_api(port)
    second = app.start_api(port)
    for _ in range(40):  # a new connection each time: the kernel spreads them
        assert http("GET", f"http://127.0.0.1:{port}/stats")[0] == 200
    assert first.poll() is None
    assert second.poll() is None
    assert "GET /stats 200" in app.log(first)
    assert "GET /stats 200" in app.log(second)
    assert app.stop(first) == 0
    assert http("GET", f"http://127.0.0.1:{port}/healthz")[0] == 200  # the other still serves
    assert app.stop(second) == 0


def test_api_refuses_to_start_when_marked_broken(app: App) -> None:
    broken = app.run("api.py", CARDSCAN_PORT=str(free_port()), CARDSCAN_API_BROKEN="1")
    assert broken.returncode == 1
    assert "simulated bad release" in broken.stdout


def done_lines(log: str) -> list[int]:
    return [int(m) for m in re.findall(r"card (\d+) done in", log)]


def test_workers_share_the_queue_without_taking_a_card_twice(app: App) -> None:
    app.migrate()
    workers = [app.start("worker.py", CARDSCAN_WORK_MS="20") for _ in range(3)]
    for worker in workers:
        app.wait_for_log(worker, "started")
    app.add_cards(60)

    wait_until(
        lambda: app.sql("SELECT COUNT(*) FROM cards WHERE status = 'done'")[0][0] == 60,
        "60 cards done",
    )
    for worker in workers:
        assert app.stop(worker) == 0
    rows = app.sql("SELECT id, status, attempts, worker, result FROM cards")
    assert {(r["status"], r["attempts"]) for r in rows} == {("done", 1)}
    per_worker = [done_lines(app.log(w)) for w in workers]
    processed = Counter(card for cards in per_worker for card in cards)
    assert sorted(processed) == sorted(r["id"] for r in rows)
    assert set(processed.values()) == {1}, "a card was processed twice"
    assert sum(1 for cards in per_worker if cards) >= 2, "one worker took every card"
    assert len({r["worker"] for r in rows}) >= 2
    assert json.loads(rows[0]["result"]) == {
        "name": "Aiko Tanaka",
        "email": "aiko@hatoba.example",
        "phone": "+81 3-1234-5678",
        "company": "Hatoba Logistics Inc.",
    }


def test_sigterm_mid_card_finishes_it_then_exits_0(app: App) -> None:
    app.migrate()
    app.add_cards(2)
    worker = app.start("worker.py", CARDSCAN_WORK_MS="1500")
    wait_until(
        lambda: app.sql("SELECT id FROM cards WHERE status = 'working'"),
        "the worker to claim a card",
    )
    assert app.stop(worker) == 0
    statuses = [r["status"] for r in app.sql("SELECT status FROM cards ORDER BY id")]
    assert statuses == ["done", "queued"]  # the card in hand finished, no new one started
    log = app.log(worker)
    assert "SIGTERM: finishing card 1, then exiting" in log
    assert "stopped after 1 cards" in log


def test_worker_requeues_stale_cards_and_gives_up_after_max_attempts(app: App) -> None:
    app.migrate()
    app.add_cards(2)
    long_ago = "2000-01-01T00:00:00.000Z"
    app.sql(
        "UPDATE cards SET status = 'working', worker = 'dead:1', attempts = id, updated_at = ?",
        (long_ago,),
    )
    worker = app.start("worker.py", CARDSCAN_WORK_MS="10", CARDSCAN_MAX_ATTEMPTS="2")
    wait_until(
        lambda: app.sql("SELECT 1 FROM cards WHERE id = 1 AND status = 'done'"),
        "the stale card to be processed again",
    )
    assert app.stop(worker) == 0
    retried, abandoned = app.sql("SELECT * FROM cards ORDER BY id")
    assert retried["attempts"] == 2
    assert retried["worker"] != "dead:1"
    assert abandoned["status"] == "failed"
    assert json.loads(abandoned["result"]) == {"error": "abandoned 2 times"}
    log = app.log(worker)
    assert "card 1 requeued: dead:1 held it since 2000-01-01" in log
    assert "card 2 failed: dead:1" in log


def test_submit_posts_cards_and_waits_for_the_workers(app: App) -> None:
    app.migrate()
    port = free_port()
    app.start_api(port)
    app.start("worker.py", CARDSCAN_WORK_MS="5")
    submitted = app.run("submit.py", "--url", f"http://127.0.0.1:{port}", "-n", "5", "--wait")
    assert submitted.returncode == 0, submitted.stderr
    *ids, stats = submitted.stdout.splitlines()
    assert ids == ["1", "2", "3", "4", "5"]
    assert json.loads(stats) == {"queued": 0, "working": 0, "done": 5, "failed": 0}
    results = [json.loads(r["result"]) for r in app.sql("SELECT result FROM cards")]
    assert all(r["name"] and r["email"] and r["phone"] and r["company"] for r in results)


def test_report_counts_cards_by_status(app: App) -> None:
    assert app.run("report.py").returncode == 3  # not migrated yet
    app.migrate()
    app.add_cards(3)
    app.sql("UPDATE cards SET status = 'done' WHERE id = 1")
    done = app.run("report.py")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "queued": 2,
        "working": 0,
        "done": 1,
        "failed": 0,
        "total": 3,
        "finishedLastDay": 1,
    }
    missing = subprocess.run(
        [sys.executable, str(APP / "report.py")],
        env={k: v for k, v in os.environ.items() if k != "CARDSCAN_DB"},
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert missing.returncode == 2 and b"CARDSCAN_DB" in missing.stdout


def test_app_file_loads_as_hatoba_reads_it() -> None:
    path = APP / "hatoba.yaml"
    app = load_app_file(path.read_text(), str(path), {})
    assert app.name == "cardscan"
    assert app.warnings == []
    assert app.parameters["/cardscan/db"].value == str(APP / "cardscan.db")
    assert set(app.task_definitions) == {
        "cardscan-api",
        "cardscan-worker",
        "cardscan-migrate",
        "cardscan-report",
    }
    for decl in app.task_definitions.values():
        for container in decl.task_definition.container_definitions:
            assert Path(container.argv()[1]).is_file(), container.argv()
            assert container.memory is not None
            assert container.memory <= 128
            assert [s.value_from for s in container.secrets] == ["/cardscan/db"]
    api = app.task_definitions["cardscan-api"].task_definition.container_definitions[0]
    assert api.environment_dict["CARDSCAN_PORT"] == "8080"
    assert api.environment_dict["CARDSCAN_API_BROKEN"] == "0"
    assert api.health_check is not None
    assert api.port_mappings == []  # replicas share the port through SO_REUSEPORT
    worker = app.task_definitions["cardscan-worker"].task_definition.container_definitions[0]
    assert worker.stop_timeout == 30
    assert worker.port_mappings == []
    assert {name: s.spec.desired_count for name, s in app.services.items()} == {
        "api": 2,
        "worker": 2,
    }
    breaker = app.services["api"].spec.deployment_configuration.deployment_circuit_breaker
    assert (breaker.enable, breaker.rollback) == (True, True)
    scaling = app.services["worker"].scaling  # on its queue table, out of the box
    assert scaling is not None and app.services["api"].scaling is None
    assert (scaling.target["minCapacity"], scaling.target["maxCapacity"]) == (1, 6)
    (queue,) = scaling.policies.values()
    assert queue.metric["sql"]["url"] == f"sqlite:///{APP / 'cardscan.db'}"
    assert "status IN ('queued', 'working')" in queue.metric["sql"]["query"]
    assert [str(t.task_definition) for t in app.before_deploy] == ["cardscan-migrate"]
    report = app.jobs["cardscan-report"].spec
    assert (report.task_definition, report.timezone) == ("cardscan-report", "Asia/Tokyo")
    assert report.schedule == "cron(0 2 * * ? *)" and report.retry.retry_on_failure


def test_app_file_takes_the_port_and_a_broken_release_from_the_environment() -> None:
    path = APP / "hatoba.yaml"
    env = {"CARDSCAN_PORT": "9090", "CARDSCAN_API_BROKEN": "1"}
    app = load_app_file(path.read_text(), str(path), env)
    api = app.task_definitions["cardscan-api"].task_definition.container_definitions[0]
    assert api.environment_dict["CARDSCAN_PORT"] == "9090"
    assert api.environment_dict["CARDSCAN_API_BROKEN"] == "1"
