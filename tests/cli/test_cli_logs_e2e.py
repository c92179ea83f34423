"""``hatoba logs`` end to end: a real ``hatoba server``, real tasks; exact bytes, JSON,
raw fragments, filters, a service's tasks prefixed and followed as they start."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from tests.cli.test_cli_e2e import env_for, hatoba, register, served

__all__ = ["served"]

pytestmark = pytest.mark.timeout(240)


def run_to_end(home: Path, *args: str) -> str:
    """``hatoba run ...``, then wait for the task to stop; returns its id."""
    done = hatoba(home, "run", *args)
    assert done.returncode == 0, done.stderr.decode()
    task_id = done.stdout.decode().strip()
    deadline = time.monotonic() + 30
    while True:
        task: Any = json.loads(hatoba(home, "task", "describe", task_id, "-o", "json").stdout)
        if task["lastStatus"] == "STOPPED":
            return task_id
        assert time.monotonic() < deadline, task
        time.sleep(0.1)


def test_bytes_json_filters(served: Path) -> None:
    script = r"printf 'one\n\377\376\n'; echo err >&2; sleep 0.2; echo two; printf 'tail'"
    task_id = run_to_end(served, "job", "--", "sh", "-c", script)
    out = hatoba(served, "logs", task_id)
    assert out.returncode == 0, out.stderr.decode()
    assert out.stdout == b"one\n\xff\xfe\ntwo\ntail" and out.stderr == b"err\n"
    lines = [
        json.loads(x)
        for x in hatoba(served, "logs", task_id, "-o", "json").stdout.split(b"\n")
        if x
    ]
    assert [o.get("message") for o in lines] == ["one", None, "err", "two", "tail"]
    assert lines[1]["messageBase64"] == "//4=" and lines[-1]["eol"] is False
    assert {o["taskId"] for o in lines} == {task_id}
    assert hatoba(served, "logs", task_id, "--grep", "^t").stdout == b"two\ntail"
    assert hatoba(served, "logs", task_id, "--tail", "2").stdout == b"two\ntail"
    assert hatoba(served, "logs", task_id, "--stream", "stderr").stderr == b"err\n"
    assert hatoba(served, "logs", task_id[:8], "--since", "1h", "-g", "one").stdout == b"one\n"
    assert hatoba(served, "logs", task_id, "--until", "2001-01-01T00:00:00Z").stdout == b""
    # `hatoba task logs` is the same stream
    assert hatoba(served, "task", "logs", task_id).stdout == out.stdout


def test_long_line_joined_and_its_fragments_with_raw(served: Path) -> None:
    register(
        served,
        {
            "family": "capped",
            "containerDefinitions": [
                {
                    "name": "main",
                    "command": ["python3", "-c", "print('a' * 2500)"],
                    "logConfiguration": {
                        "logDriver": "json-file",
                        "options": {"hatoba-max-line": "1024"},
                    },
                }
            ],
        },
    )
    task_id = run_to_end(served, "capped")
    assert hatoba(served, "logs", task_id).stdout == b"a" * 2500 + b"\n"
    raw = [
        json.loads(x)
        for x in hatoba(served, "logs", task_id, "--raw", "-o", "json").stdout.splitlines()
    ]
    assert [(len(o["message"]), o.get("partial", False)) for o in raw] == [
        (1024, True),
        (1024, True),
        (452, False),
    ]
    # as text, the fragments still add up to the line (no newline after a fragment)
    assert hatoba(served, "logs", task_id, "--raw").stdout == b"a" * 2500 + b"\n"


def test_usage_errors(served: Path) -> None:
    missing = hatoba(served, "logs", "service/nothing-here")
    assert missing.returncode == 1 and b"nothing-here" in missing.stderr
    bad = hatoba(served, "logs", "abcd", "--stream", "stdin")
    assert bad.returncode == 2 and b"--stream" in bad.stderr


TICKER = 'i=0; while true; do echo "tick $i"; i=$((i+1)); sleep 0.1; done'


def test_service_lines_prefixed_by_task_and_new_tasks_followed(served: Path) -> None:
    register(
        served,
        {
            "family": "ticker",
            "containerDefinitions": [
                {"name": "main", "command": TICKER, "shell": True, "stopTimeout": 1}
            ],
        },
    )
    created = hatoba(served, "service", "create", "ticker", "-t", "ticker", "-n", "2", "--wait")
    assert created.returncode == 0, created.stderr.decode()
    try:
        time.sleep(0.5)
        out = hatoba(served, "logs", "service/ticker").stdout.decode().splitlines()
        prefixes = {line.split(" | ")[0] for line in out}
        tasks = json.loads(hatoba(served, "service", "tasks", "ticker", "-o", "json").stdout)
        ids = {t["taskId"][:8] for t in tasks}
        assert prefixes == ids and all(" | tick " in line for line in out)

        follower = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hatoba.cli.main",
                "logs",
                "service/ticker",
                "-f",
                "--tail",
                "0",
            ],
            env=env_for(served),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        seen: list[str] = []

        def read() -> None:
            assert follower.stdout is not None
            for raw in follower.stdout:
                seen.append(raw.decode())

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        scaled = hatoba(served, "service", "scale", "ticker", "3", "--wait")
        assert scaled.returncode == 0, scaled.stderr.decode()
        tasks = json.loads(hatoba(served, "service", "tasks", "ticker", "-o", "json").stdout)
        new = {t["taskId"][:8] for t in tasks} - ids
        deadline = time.monotonic() + 20
        while not any(line.split(" | ")[0] in new for line in list(seen)):
            assert time.monotonic() < deadline, f"no line of {new} in {seen[-5:]}"
            time.sleep(0.2)
        follower.terminate()
        follower.wait(10)
    finally:
        hatoba(served, "service", "delete", "ticker", "--force", "--wait")
