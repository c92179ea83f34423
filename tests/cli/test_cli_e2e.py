"""The ``hatoba`` command end to end: real subprocesses, real control plane, real tasks.

Most tests share one ``hatoba server`` (started the way users start it) to stay fast; the
first test uses no server at all, so the embedded control plane is exercised too.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
JOB = {
    "family": "job",
    "cpu": "256",
    "memory": "128",
    "containerDefinitions": [{"name": "main", "command": ["echo", "default"], "stopTimeout": 2}],
}


def env_for(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HATOBA_")}
    env["HATOBA_HOME"] = str(home)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH")) if p)
    return env


def hatoba(
    home: Path, *args: str, stdin: bytes | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "hatoba.cli.main", *args],
        env=env_for(home),
        input=stdin,
        capture_output=True,
        timeout=timeout,
        check=False,
    )


def register(home: Path, body: dict[str, Any] | None = None) -> None:
    path = home / "job.json"
    path.write_text(json.dumps(body or JOB))
    done = hatoba(home, "taskdef", "register", str(path))
    assert done.returncode == 0, done.stderr.decode()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("served")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hatoba.cli.main", "server", "--port", "0"],
        env=env_for(home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while not (home / "server.json").exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode() if proc.stderr else ""
                pytest.fail(f"hatoba server did not start: {err}")
            time.sleep(0.05)
        register(home)
        yield home
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_embedded_run_follow_passes_bytes_and_exit_code(tmp_path: Path) -> None:
    register(tmp_path)
    script = "echo out; echo err >&2; printf 'tail'; exit 3"
    done = hatoba(tmp_path, "run", "--follow", "job", "--", "sh", "-c", script)
    assert done.returncode == 3, done.stderr.decode()
    assert done.stdout == b"out\ntail"
    assert b"err\n" in done.stderr
    assert b"using an embedded control plane" in done.stderr
    assert not (tmp_path / "server.json").exists()  # the embedded control plane stopped


def test_usage_errors_name_the_option(tmp_path: Path) -> None:
    bad_timeout = hatoba(tmp_path, "run", "job", "--timeout", "5x")
    assert bad_timeout.returncode == 2 and b"--timeout" in bad_timeout.stderr
    bad_env = hatoba(tmp_path, "run", "job", "--env", "NOVALUE")
    assert bad_env.returncode == 2 and b"--env" in bad_env.stderr


def test_register_invalid_names_the_field(served: Path, tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(
        json.dumps({"family": "bad", "containerDefinitions": [{"name": "a", "memory": "lots"}]})
    )
    done = hatoba(served, "taskdef", "register", str(path))
    assert done.returncode == 1
    assert b"error:" in done.stderr and b"containerDefinitions[0].memory" in done.stderr
    assert b"Traceback" not in done.stderr
    path.write_text("{not json")
    done = hatoba(served, "taskdef", "register", str(path))
    assert done.returncode == 1 and b"not valid JSON: line 1" in done.stderr


def test_run_follow_echo(served: Path) -> None:
    done = hatoba(
        served, "run", "-f", "job", "--env", "WHO=world", "--", "sh", "-c", 'echo "hi $WHO"'
    )
    assert (done.returncode, done.stdout) == (0, b"hi world\n"), done.stderr.decode()
    assert b"embedded" not in done.stderr  # it found the running server


def test_json_output_parses(served: Path) -> None:
    started = hatoba(served, "-o", "json", "run", "job", "--started-by", "e2e")
    assert started.returncode == 0, started.stderr.decode()
    task = json.loads(started.stdout)
    assert task["taskDefinitionArn"] == "job:1" and task["startedBy"] == "e2e"
    described = hatoba(served, "task", "describe", task["taskId"][:12], "-o", "json")
    assert json.loads(described.stdout)["taskId"] == task["taskId"]
    listed = json.loads(hatoba(served, "task", "list", "--output", "json").stdout)
    assert task["taskId"] in [t["taskId"] for t in listed]
    tds = json.loads(hatoba(served, "taskdef", "list", "-o", "json").stdout)
    assert [td["family"] for td in tds] == ["job"] and tds[0]["containerDefinitions"]
    exported = json.loads(hatoba(served, "taskdef", "export", "job:1").stdout)
    assert exported["family"] == "job"


def test_exec_logs_and_stop(served: Path) -> None:
    started = hatoba(served, "run", "job", "--", "sh", "-c", "echo ready; exec sleep 60")
    assert started.returncode == 0, started.stderr.decode()
    task_id = started.stdout.decode().strip()
    try:
        ran = hatoba(
            served, "exec", task_id, "--", "sh", "-c", "cat; echo bye >&2; exit 7", stdin=b"piped\n"
        )
        assert (ran.returncode, ran.stdout) == (7, b"piped\n"), ran.stderr.decode()
        assert ran.stderr.endswith(b"bye\n")
        logs = hatoba(served, "task", "logs", task_id, "--since", "1h")
        assert logs.stdout == b"ready\n"
        as_json = hatoba(served, "task", "logs", task_id, "-o", "json")
        assert json.loads(as_json.stdout.splitlines()[0])["message"] == "ready"
    finally:
        stopped = hatoba(served, "task", "stop", task_id, "--wait", "--reason", "test done")
    assert stopped.returncode == 0 and stopped.stdout.startswith(b"Stopped " + task_id.encode())
    described = json.loads(hatoba(served, "task", "describe", task_id, "-o", "json").stdout)
    assert described["lastStatus"] == "STOPPED" and described["stoppedReason"] == "test done"


def test_shrink_needs_allow_shrink(served: Path) -> None:
    refused = hatoba(served, "run", "job", "--memory", "64", "--", "true")
    assert refused.returncode == 1
    assert b"allowShrink" in refused.stderr and b"--allow-shrink" in refused.stderr
    allowed = hatoba(served, "run", "-f", "job", "--memory", "64", "--allow-shrink", "--", "true")
    assert allowed.returncode == 0 and b"warning: --memory 64 MiB" in allowed.stderr


def test_hatoba_outcome_codes(served: Path) -> None:
    unplaceable = hatoba(
        served, "run", "job", "--memory", "99999999", "--retries", "1", "--", "true"
    )
    assert unplaceable.returncode == 125
    assert (
        unplaceable.stderr.count(b"RESOURCE:MEMORY") == 2 and b"retrying in" in unplaceable.stderr
    )
    timed_out = hatoba(served, "run", "-f", "job", "--timeout", "1s", "--", "sleep", "30")
    assert timed_out.returncode == 124, timed_out.stderr.decode()
    missing = hatoba(served, "run", "-f", "job", "--", "/nonexistent/program")
    assert missing.returncode == 125 and b"failed to start" in missing.stderr


def test_second_server_is_refused(served: Path) -> None:
    done = hatoba(served, "server", "--port", "0")
    assert done.returncode == 1 and b"already running (pid" in done.stderr


def test_locked_data_dir_without_server_says_how_to_start_one(tmp_path: Path) -> None:
    with open(tmp_path / "server.lock", "a+") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        done = hatoba(tmp_path, "task", "list")
    assert done.returncode == 1 and b"hatoba server" in done.stderr


def test_ctrl_c_during_follow_stops_the_task(served: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hatoba.cli.main",
            "run",
            "-f",
            "job",
            "--",
            "sh",
            "-c",
            "echo up; exec sleep 60",
        ],
        env=env_for(served),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"up\n"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()
    assert b"interrupted; stopping task" in err
    listed = json.loads(hatoba(served, "task", "list", "-o", "json").stdout)
    mine = [t for t in listed if "Ctrl-C" in t.get("stoppedReason", "")]
    assert mine and mine[0]["lastStatus"] == "STOPPED"


def test_follow_json_is_ndjson_then_the_task(served: Path) -> None:
    done = hatoba(served, "run", "-f", "-o", "json", "job", "--", "sh", "-c", "echo a; exit 4")
    assert done.returncode == 4
    first, last = (json.loads(line) for line in done.stdout.splitlines())
    assert (first["message"], first["stream"]) == ("a", "stdout")
    assert last["task"]["lastStatus"] == "STOPPED"
