"""``hatoba job ...`` end to end: a real ``hatoba server``, its job scheduler, real
processes: create / list / describe / next in a DST zone, ``run --follow`` streaming every
attempt and exiting with the run's code, retries in the history, a chain, disable/enable,
update and ``--from-file``, cancel, and bad input naming the field with a non-zero exit."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.cli.test_cli_e2e import hatoba, register, served

__all__ = ["served"]

pytestmark = pytest.mark.timeout(240)


def shell(family: str, script: str) -> dict[str, Any]:
    return {
        "family": family,
        "containerDefinitions": [
            {"name": "main", "command": script, "shell": True, "stopTimeout": 1}
        ],
    }


def ok(home: Path, *args: str, timeout: float = 120) -> str:
    done = hatoba(home, *args, timeout=timeout)
    assert done.returncode == 0, (args, done.stderr.decode())
    return done.stdout.decode()


def as_json(home: Path, *args: str) -> Any:
    return json.loads(ok(home, *args, "-o", "json"))


def until(check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.3)


@pytest.fixture(scope="module")
def home(served: Path) -> Iterator[Path]:
    """The shared server; runs still active at the end are cancelled (tasks outlive the
    control plane)."""
    yield served
    for job in as_json(served, "job", "list"):
        for run in as_json(served, "job", "history", job["jobName"]):
            if run["status"] in ("PENDING", "RUNNING", "RETRYING"):
                hatoba(served, "job", "cancel", run["runId"])


def test_create_list_describe_and_next_across_dst(home: Path) -> None:
    register(home, shell("report", "echo report"))
    created = as_json(
        home,
        "job", "create", "nightly", "-t", "report",
        "--schedule", "cron(30 2 * * ? *)", "--timezone", "America/New_York",
        "--overlap", "Forbid", "--retries", "2", "--retry-on-failure", "--timeout", "5m",
        "--webhook", "https://hooks.example.com/T1", "--webhook-format", "slack",
    )  # fmt: skip
    assert created["jobName"] == "nightly" and created["timezone"] == "America/New_York"
    assert created["retry"] == {**created["retry"], "maxAttempts": 3, "retryOnFailure": True}
    assert created["timeoutSeconds"] == 300
    assert created["notifications"][0]["format"] == "slack"
    ok(home, "job", "create", "tokyo", "-t", "report", "-s", "cron(0 9 * * ? *)", "--tz",
       "Asia/Tokyo")  # fmt: skip

    table = ok(home, "job", "list")
    for expected in ("NAME", "nightly", "cron(30 2 * * ? *)", "America/New_York", "enabled"):
        assert expected in table, expected
    assert "09:00:00 JST" in table  # the next fire, on the job's own clock
    assert {j["jobName"] for j in as_json(home, "job", "list")} >= {"nightly", "tokyo"}

    # 2026-03-08 02:30 does not exist in New York (the clocks spring forward): skipped
    nxt = ok(home, "job", "next", "nightly", "-n", "4", "--after", "2026-03-06T12:00:00Z")
    for expected in (
        "2026-03-07 02:30:00 EST", "2026-03-07T07:30:00Z",
        "2026-03-09 02:30:00 EDT", "2026-03-09T06:30:00Z",
        "2026-03-11 02:30:00 EDT",
    ):  # fmt: skip
        assert expected in nxt, (expected, nxt)
    assert "2026-03-08" not in nxt and "2026-03-12" not in nxt
    fires = as_json(home, "job", "next", "nightly", "-n", "2", "--after", "2026-11-01T00:00:00Z")
    # 01:00-02:00 repeats on 2026-11-01; 02:30 is after it: once a day, at -05:00 now
    assert fires["fireTimes"] == ["2026-11-01T07:30:00Z", "2026-11-02T07:30:00Z"]
    assert fires["timezone"] == "America/New_York"

    shown = ok(home, "job", "describe", "nightly")
    for expected in ("job nightly", "report", "America/New_York", "next fire times",
                     "up to 3 attempts", "hooks.example.com", "Forbid"):  # fmt: skip
        assert expected in shown, expected
    assert as_json(home, "job", "describe", "nightly")["schedule"] == "cron(30 2 * * ? *)"


def test_run_follow_streams_every_attempt_and_retries_show_in_history(
    home: Path, tmp_path: Path
) -> None:
    counter = tmp_path / "count"
    script = (
        f"n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}; "
        'echo "attempt $n"; echo "oops $n" >&2; [ $n -ge 3 ] || exit 5'
    )
    register(home, shell("flaky", script))
    ok(home, "job", "create", "flaky", "-t", "flaky", "--retries", "2", "--retry-on-failure",
       "--backoff", "0.2s")  # fmt: skip
    done = hatoba(home, "job", "run", "flaky", "--follow", timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == b"attempt 1\nattempt 2\nattempt 3\n"
    err = done.stderr.decode()
    assert "oops 1\n" in err and "oops 3\n" in err
    assert "attempt 1 failed: exit code 5; attempt 2" in err  # as it was retried
    assert "attempt 2 failed: exit code 5; attempt 3" in err
    assert "SUCCEEDED after 3 attempts" in err

    (run,) = as_json(home, "job", "history", "flaky")
    assert run["status"] == "SUCCEEDED" and run["trigger"] == "manual"
    assert [a["exitCode"] for a in run["attempts"]] == [5, 5, 0]
    table = ok(home, "job", "history", "flaky")
    for expected in ("RUN ID", run["runId"], "manual", "SUCCEEDED", "ATTEMPTS", " 3 "):
        assert expected in table, (expected, table)

    assert hatoba(home, "job", "logs", "flaky", "--attempt", "2").stdout == b"attempt 2\n"
    assert hatoba(home, "job", "logs", run["runId"]).stdout == done.stdout
    missing = hatoba(home, "job", "logs", run["runId"], "--attempt", "4")
    assert missing.returncode == 1 and b"no attempt 4" in missing.stderr
    shown = ok(home, "job", "describe", run["runId"])
    assert "SUCCEEDED" in shown and run["attempts"][2]["taskId"] in shown

    register(home, shell("broken", "echo bye; exit 7"))
    ok(home, "job", "create", "broken", "-t", "broken")
    failed = hatoba(home, "job", "run", "broken", "-f")
    assert failed.returncode == 7 and failed.stdout == b"bye\n"
    assert b"FAILED after 1 attempt: attempt 1 failed: exit code 7" in failed.stderr
    waited = hatoba(home, "job", "run", "broken", "--wait", "-o", "json")
    assert waited.returncode == 7 and json.loads(waited.stdout)["status"] == "FAILED"


def test_chain_starts_the_next_job_with_the_parent_run_id(home: Path, tmp_path: Path) -> None:
    marker = tmp_path / "alerted"
    register(home, shell("alert", f"echo alerted > {marker}"))
    register(home, shell("load", "exit 4"))
    ok(home, "job", "create", "alert", "-t", "alert")
    ok(home, "job", "create", "load", "-t", "load", "--on-failure", "alert")
    done = hatoba(home, "job", "run", "load", "--follow", "-o", "json")
    assert done.returncode == 4, done.stderr.decode()
    parent = json.loads(done.stdout.splitlines()[-1])["run"]

    def alerted() -> bool:
        runs = as_json(home, "job", "history", "alert")
        return bool(runs) and runs[0]["status"] == "SUCCEEDED"

    until(alerted)
    (child,) = as_json(home, "job", "history", "alert")
    assert child["trigger"] == "chain" and child["parentRunId"] == parent["runId"]
    assert marker.read_text() == "alerted\n"
    assert "on failure → alert" in ok(home, "job", "describe", "load")
    refused = hatoba(home, "job", "delete", "alert")
    assert refused.returncode == 1 and b"load chains to alert" in refused.stderr


def test_disable_enable_update_from_file_and_cancel(home: Path, tmp_path: Path) -> None:
    register(home, shell("sleeper", "sleep 30"))
    spec = tmp_path / "job.yaml"
    spec.write_text(
        "jobName: slow\ntaskDefinition: sleeper\nschedule: rate(1 day)\n"
        "overlapPolicy: Replace\nretry: {maxAttempts: 2}\n"
    )
    created = as_json(home, "job", "create", "--from-file", str(spec))
    assert created["overlapPolicy"] == "Replace" and created["schedule"] == "rate(1 day)"
    assert as_json(home, "job", "disable", "slow")["enabled"] is False
    assert "disabled" in ok(home, "job", "list")
    assert as_json(home, "job", "enable", "slow")["enabled"] is True

    updated = as_json(home, "job", "update", "slow", "--timeout", "90s", "--tz", "Asia/Tokyo")
    assert updated["timeoutSeconds"] == 90 and updated["timezone"] == "Asia/Tokyo"
    assert updated["overlapPolicy"] == "Replace" and updated["retry"]["maxAttempts"] == 2

    exported = tmp_path / "slow.json"
    exported.write_text(ok(home, "job", "describe", "slow", "-o", "json"))
    copy = as_json(home, "job", "create", "slow-copy", "--from-file", str(exported))
    assert copy["jobName"] == "slow-copy" and copy["timeoutSeconds"] == 90

    run_id = ok(home, "job", "run", "slow").strip()
    assert run_id.startswith("jr-")
    until(lambda: bool(as_json(home, "job", "describe", run_id)["attempts"][0].get("taskId")))
    cancelled = as_json(home, "job", "cancel", run_id, "--reason", "enough")
    assert cancelled["status"] == "CANCELLED" and cancelled["reason"] == "enough"
    ok(home, "job", "delete", "slow-copy")
    gone = hatoba(home, "job", "describe", "slow-copy")
    assert gone.returncode == 1 and b"not found" in gone.stderr


def test_bad_input_names_the_field_and_exits_non_zero(home: Path) -> None:
    register(home, shell("report", "echo report"))
    bad = hatoba(
        home, "job", "create", "bad", "-t", "report",
        "--schedule", "cron(61 * * * ? *)", "--timezone", "Mars/Olympus",
    )  # fmt: skip
    err = bad.stderr.decode()
    assert bad.returncode == 1, err
    assert "schedule" in err and "timezone" in err and "Mars/Olympus" in err
    assert "hint: --schedule sets schedule" in err

    bad = hatoba(home, "job", "create", "bad", "-t", "report", "--overlap", "Sometimes")
    err = bad.stderr.decode()
    assert bad.returncode == 1 and "overlapPolicy" in err and "--overlap" in err

    bad = hatoba(home, "job", "create", "bad", "-t", "nope", "--on-success", "ghost")
    err = bad.stderr.decode()
    assert bad.returncode == 1 and "taskDefinition" in err and "chain.onSuccess[0]" in err

    bad = hatoba(home, "job", "create", "bad", "-t", "report", "--timeout", "5x")
    assert bad.returncode == 2 and b"--timeout" in bad.stderr
    bad = hatoba(home, "job", "create", "-t", "report")
    assert bad.returncode == 2 and b"missing NAME" in bad.stderr
    bad = hatoba(home, "job", "next", "nightly", "--after", "yesterday")
    assert bad.returncode == 2 and b"--after" in bad.stderr
    assert "bad" not in {j["jobName"] for j in as_json(home, "job", "list")}
    missing = hatoba(home, "job", "run", "ghost", "--follow")
    assert missing.returncode == 1 and b"job ghost not found" in missing.stderr
