"""``hatoba service ...`` end to end: a real ``hatoba server``, its service scheduler, real
``sleep`` processes; ``--wait`` returning at the steady state, failing on a broken
revision (and the service rolling back), scale to N and to 0, delete."""

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


def sleeper(family: str, seconds: int = 300) -> dict[str, Any]:
    return {
        "family": family,
        "cpu": "64",
        "memory": "16",
        "containerDefinitions": [
            {"name": "main", "command": ["sleep", str(seconds)], "stopTimeout": 1}
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
    """The shared server; every service left is deleted (its processes stopped) at the end,
    since tasks outlive the control plane."""
    yield served
    for svc in as_json(served, "service", "list"):
        hatoba(served, "service", "delete", svc["serviceName"], "--force", "--wait")


def test_create_wait_then_list_describe_tasks_events(home: Path) -> None:
    register(home, sleeper("web"))
    done = hatoba(
        home,
        "service",
        "create",
        "web",
        "-t",
        "web",
        "-n",
        "2",
        "--wait",
        "--timeout",
        "60",
        "-o",
        "json",
    )
    assert done.returncode == 0, done.stderr.decode()
    created = json.loads(done.stdout)
    assert (created["serviceName"], created["runningCount"]) == ("web", 2)
    (primary,) = created["deployments"]
    assert primary["rolloutState"] == "COMPLETED" and primary["runningCount"] == 2
    err = done.stderr.decode()
    assert "deployment " + primary["id"] + " started" in err  # the events, as they came
    assert f"web {primary['id']}: 2/2 running  COMPLETED" in err

    (listed,) = [s for s in as_json(home, "service", "list") if s["serviceName"] == "web"]
    assert listed["runningCount"] == 2 and listed["desiredCount"] == 2
    table = ok(home, "service", "list")
    assert "web" in table and "COMPLETED" in table and "TASK DEFINITION" in table
    shown = ok(home, "service", "describe", "web")
    for expected in ("deployments", "events", "tasks", primary["id"], "web:1", "RUNNING"):
        assert expected in shown, expected
    assert as_json(home, "service", "describe", "web")["taskDefinition"] == "web:1"
    tasks = as_json(home, "service", "tasks", "web")
    assert len(tasks) == 2 and {t["lastStatus"] for t in tasks} == {"RUNNING"}
    assert {t["group"] for t in tasks} == {"service:web"}
    assert "RUNNING" in ok(home, "service", "tasks", "web")
    events = as_json(home, "service", "events", "web")
    ids = [e["id"] for e in events]
    assert ids == sorted(ids) and any("started" in e["message"] for e in events)
    assert "started" in ok(home, "service", "events", "web", "-n", "5")


def test_update_to_a_new_revision_waits_for_the_steady_state(home: Path) -> None:
    register(home, sleeper("api"))
    ok(home, "service", "create", "api", "-t", "api", "-n", "2", "--wait", "--timeout", "60")
    register(home, sleeper("api", 301))
    done = hatoba(
        home,
        "service",
        "update",
        "api",
        "-t",
        "api",
        "--max-percent",
        "150",
        "--min-healthy-percent",
        "50",
        "--wait",
        "--timeout",
        "90",
        "-o",
        "json",
    )
    assert done.returncode == 0, done.stderr.decode()
    svc = json.loads(done.stdout)
    assert svc["taskDefinition"] == "api:2"
    (primary,) = svc["deployments"]
    assert (primary["taskDefinition"], primary["rolloutState"]) == ("api:2", "COMPLETED")
    config = svc["deploymentConfiguration"]
    assert (config["maximumPercent"], config["minimumHealthyPercent"]) == (150, 50)
    tasks = as_json(home, "service", "tasks", "api")
    assert {t["taskDefinitionArn"] for t in tasks} == {"api:2"} and len(tasks) == 2
    ok(home, "service", "delete", "api", "--force", "--wait")


def test_scale_wait_to_three_then_to_zero(home: Path) -> None:
    register(home, sleeper("wrk"))
    ok(home, "service", "create", "wrk", "-t", "wrk", "-n", "1", "--wait", "--timeout", "60")
    scaled = json.loads(
        ok(home, "service", "scale", "wrk", "3", "--wait", "--timeout", "60", "-o", "json")
    )
    assert scaled["desiredCount"] == 3
    tasks = as_json(home, "service", "tasks", "wrk")
    assert len(tasks) == 3 and all(t["lastStatus"] == "RUNNING" for t in tasks)

    done = hatoba(home, "service", "scale", "wrk", "0", "--wait", "--timeout", "60")
    assert done.returncode == 0, done.stderr.decode()
    assert "Scaled service wrk" in done.stdout.decode()
    assert as_json(home, "service", "tasks", "wrk") == []
    every = as_json(home, "service", "tasks", "wrk", "--all")
    assert len(every) >= 3 and all(t["lastStatus"] == "STOPPED" for t in every)

    done = hatoba(home, "service", "delete", "wrk", "--wait")  # desired 0: no --force needed
    assert done.returncode == 0 and "Deleted service wrk" in done.stdout.decode()
    gone = hatoba(home, "service", "describe", "wrk")
    assert gone.returncode == 1 and "service wrk not found" in gone.stderr.decode()


def test_broken_revision_fails_the_wait_and_rolls_back(home: Path) -> None:
    register(home, sleeper("roll"))
    ok(
        home,
        "service",
        "create",
        "roll",
        "-t",
        "roll",
        "-n",
        "1",
        "--circuit-breaker",
        "--rollback",
        "--wait",
        "--timeout",
        "60",
    )
    broken = sleeper("roll")
    broken["containerDefinitions"][0]["command"] = ["sh", "-c", "exit 1"]
    register(home, broken)
    done = hatoba(
        home, "service", "update", "roll", "-t", "roll:2", "--wait", "--timeout", "150", timeout=180
    )
    err = done.stderr.decode()
    assert done.returncode == 3, err
    assert "FAILED" in err and "circuit breaker" in err
    assert "rolling back to roll:1" in err and "latest events:" in err

    def rolled_back() -> bool:
        svc = as_json(home, "service", "describe", "roll")
        primary = [d for d in svc["deployments"] if d["status"] == "PRIMARY"]
        return (
            svc["taskDefinition"] == "roll:1"
            and len(svc["deployments"]) == 1
            and primary[0]["rolloutState"] == "COMPLETED"
            and primary[0]["runningCount"] == 1
        )

    until(rolled_back, timeout=60)
    svc = as_json(home, "service", "describe", "roll")
    assert svc["deployments"][0].get("rollbackOf")
    shown = ok(home, "service", "describe", "roll")
    assert "roll:1" in shown and "COMPLETED" in shown and "rollback of" in shown
    tasks = as_json(home, "service", "tasks", "roll")
    assert [t["taskDefinitionArn"] for t in tasks] == ["roll:1"]
    ok(home, "service", "delete", "roll", "--force", "--wait")


def test_delete_needs_zero_or_force_and_wait_returns_when_gone(home: Path) -> None:
    register(home, sleeper("del"))
    ok(home, "service", "create", "del", "-t", "del", "-n", "2", "--wait", "--timeout", "60")
    pids = [t["containers"][0]["pid"] for t in as_json(home, "service", "tasks", "del")]
    refused = hatoba(home, "service", "delete", "del")
    assert refused.returncode == 1 and "scale it to 0 first" in refused.stderr.decode()
    done = hatoba(home, "service", "delete", "del", "--force", "--wait", "-o", "json")
    assert done.returncode == 0, done.stderr.decode()
    assert json.loads(done.stdout)["status"] == "DRAINING"
    assert hatoba(home, "service", "describe", "del").returncode == 1
    assert all(not Path(f"/proc/{pid}").exists() for pid in pids if pid)


def test_wait_times_out_with_its_own_code(home: Path) -> None:
    register(home, sleeper("stuck"))
    done = hatoba(
        home,
        "service",
        "create",
        "stuck",
        "-t",
        "stuck",
        "-n",
        "1",
        "--constraint",
        "attribute:rack == nowhere",
        "--wait",
        "--timeout",
        "2",
    )
    assert done.returncode == 124, done.stderr.decode()
    assert "timed out after 2" in done.stderr.decode()
    ok(home, "service", "delete", "stuck", "--force", "--wait")


def test_bad_input_is_one_clear_error_naming_the_field(home: Path, tmp_path: Path) -> None:
    register(home, sleeper("val"))

    def fails(*args: str, code: int = 1) -> str:
        done = hatoba(home, "service", *args)
        err = done.stderr.decode()
        assert done.returncode == code, (args, err)
        assert "Traceback" not in err
        return err

    assert "serviceName" in fails("create", "9bad", "-t", "val")
    assert "taskDefinition" in fails("create", "x", "-t", "nope")
    assert "--desired-count" in fails("create", "x", "-t", "val", "-n", "-1", code=2)
    assert "--task-definition" in fails("create", "x", code=2)
    err = fails(
        "create",
        "x",
        "-t",
        "val",
        "-n",
        "1",
        "--min-healthy-percent",
        "100",
        "--max-percent",
        "100",
    )
    assert "deploymentConfiguration.maximumPercent" in err and "hint: --max-percent" in err
    err = fails(
        "create",
        "x",
        "-t",
        "val",
        "--constraint",
        "attribute:rack ==",
        "--strategy",
        "binpack:disk",
    )
    assert "placementConstraints[0].expression" in err and "placementStrategy[0].field" in err
    assert "--timeout" in fails("create", "x", "-t", "val", "--timeout", "soon", code=2)
    assert "service nope not found" in fails("update", "nope", "-n", "1")
    assert "nothing to change" in fails("update", "nope", code=2)
    assert "service nope not found" in fails("scale", "nope", "1")
    assert as_json(home, "service", "list") == [] or all(
        s["serviceName"] != "x" for s in as_json(home, "service", "list")
    )

    spec = tmp_path / "svc.json"
    spec.write_text(
        json.dumps(
            {
                "serviceName": "fromfile",
                "taskDefinition": "val",
                "desiredCount": 0,
                "cluster": "prod",
                "launchType": "EC2",
                "deploymentConfiguration": {"alarms": {"enable": False}, "maximumPercent": 150},
            }
        )
    )
    done = hatoba(home, "service", "create", "--from-file", str(spec), "-o", "json")
    assert done.returncode == 0, done.stderr.decode()
    err = done.stderr.decode()
    assert "cluster: does not apply" in err and "launchType: does not apply" in err
    assert "deploymentConfiguration.alarms: does not apply" in err
    made = json.loads(done.stdout)
    assert made["serviceName"] == "fromfile" and made["desiredCount"] == 0
    assert made["deploymentConfiguration"]["maximumPercent"] == 150
    spec.write_text(json.dumps({"serviceName": "typo", "taskDefinition": "val", "desiredCont": 1}))
    assert "desiredCont" in fails("create", "--from-file", str(spec))
    ok(home, "service", "delete", "fromfile", "--wait")
