"""``hatoba scaling ...`` end to end: a real ``hatoba server``, its scaling loop reading a
real Redis list, workers that are real processes BRPOPping jobs off it. A backlog scales the
service out, the workers drain it, and it scales back in after a 2 s stabilization window;
describe, activities and watch (NDJSON and the chart) show it; bad policies exit 1 naming
the field."""

from __future__ import annotations

import json
import secrets
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from tests.cli.test_cli_e2e import hatoba, register, served
from tests.cli.test_cli_services_e2e import as_json, ok, until
from tests.scalers.conftest import REDIS_URL, _need

__all__ = ["served"]

pytestmark = pytest.mark.timeout(240)

# one job at a time, ~0.1 s each; SIGTERM ends it between jobs
WORKER = """
import signal, sys, time, redis
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
r = redis.Redis.from_url(sys.argv[1])
while True:
    if r.brpop([sys.argv[2]], timeout=1):
        time.sleep(0.1)
"""


def worker_td(family: str, key: str) -> dict[str, Any]:
    return {
        "family": family,
        "cpu": "32",
        "memory": "64",
        "containerDefinitions": [
            {
                "name": "main",
                "command": [sys.executable, "-c", WORKER, REDIS_URL, key],
                "stopTimeout": 5,
            }
        ],
    }


@pytest.fixture(scope="module")
def home(served: Path) -> Iterator[Path]:
    """The shared server; scalable targets, then services, removed at the end (tasks
    outlive the control plane)."""
    yield served
    for t in as_json(served, "scaling", "list"):
        hatoba(served, "scaling", "remove", t["serviceName"])
    for svc in as_json(served, "service", "list"):
        hatoba(served, "service", "delete", svc["serviceName"], "--force", "--wait")


@pytest.fixture
def queue() -> Iterator[tuple[redis.Redis, str]]:
    client = redis.Redis.from_url(_need("Redis", REDIS_URL, 6379))
    key = f"hatoba-test-{secrets.token_hex(6)}"
    try:
        yield client, key
    finally:
        client.delete(key)
        client.close()


def desired(home: Path, service: str) -> int:
    count: int = as_json(home, "service", "describe", service)["desiredCount"]
    return count


def test_backlog_scales_out_and_back_in(home: Path, queue: tuple[redis.Redis, str]) -> None:
    client, key = queue
    register(home, worker_td("drain", key))
    ok(home, "service", "create", "drain", "-t", "drain", "-n", "1", "--wait", "--timeout", "60")
    shown = ok(home, "scaling", "target", "drain", "--min", "1", "--max", "4")
    assert "min 1, max 4" in shown
    put = as_json(
        home,
        "scaling", "policy", "put", "drain", "backlog",
        "--redis-list", REDIS_URL, key,
        "--target-per-task", "10",
        "--stabilization", "2s",
        "--poll-interval", "0.2",
    )  # fmt: skip
    tt = put["targetTrackingConfiguration"]
    assert tt["metricType"] == "AverageValue" and tt["scaleInStabilizationSeconds"] == 2
    assert tt["metric"] == {"redisList": {"url": REDIS_URL, "key": key}, "pollInterval": 0.2}

    client.lpush(key, *[f"job-{i}" for i in range(120)])
    peak = 1
    deadline = time.monotonic() + 60
    while client.llen(key) > 0 or peak == 1:  # scaled out, then drained by the workers
        peak = max(peak, desired(home, "drain"))
        assert time.monotonic() < deadline, f"backlog {client.llen(key)}, peak {peak}"
        time.sleep(0.2)
    assert peak > 1
    until(lambda: desired(home, "drain") == 1, timeout=30)  # in, after the 2 s window

    moves = [
        (a["fromCount"], a["toCount"]) for a in as_json(home, "scaling", "activities", "drain")
    ]
    assert moves[-1][0] == 1 and moves[-1][1] > 1, moves  # the first move: out from 1
    assert moves[0][1] == 1, moves  # the latest: back in to 1
    table = ok(home, "scaling", "activities", "drain")
    assert "FROM → TO" in table and f"1 → {moves[-1][1]}" in table and "backlog" in table

    desc = as_json(home, "scaling", "describe", "drain")
    assert desc["scalableTarget"]["maxCapacity"] == 4 and desc["desiredCount"] == 1
    assert desc["metrics"]["backlog"]["value"] == 0 and desc["scalingLoop"] == "leader"
    shown = ok(home, "scaling", "describe", "drain")
    for expected in ("min 1, max 4", "backlog", "redisList", "10 per task", "decision"):
        assert expected in shown, (expected, shown)

    lines = ok(home, "scaling", "watch", "drain", "-o", "json", "--samples", "2").splitlines()
    samples = [json.loads(line) for line in lines]
    assert len(samples) == 2 and samples[0]["desiredCount"] == 1
    assert samples[1]["metrics"]["backlog"] == {"value": 0} and samples[1]["at"]
    chart = ok(home, "scaling", "watch", "drain", "--samples", "2", "--interval", "0.2s")
    assert "autoscaling: drain" in chart and "desired" in chart and "running" in chart
    assert any(c in chart for c in "▁▂▃▄▅▆▇█")  # the counts, drawn

    ok(home, "scaling", "policy", "delete", "drain", "backlog")
    assert as_json(home, "scaling", "describe", "drain")["policies"] == []
    gone = hatoba(home, "scaling", "policy", "delete", "drain", "backlog")
    assert gone.returncode == 1 and b"no scaling policy backlog" in gone.stderr


def test_bad_policies_exit_1_naming_the_field(home: Path, tmp_path: Path) -> None:
    register(home, worker_td("strict", "unused"))
    ok(home, "service", "create", "strict", "-t", "strict", "-n", "0")
    no_target = hatoba(home, "scaling", "policy", "put", "strict", "p", "--cpu", "60")
    assert no_target.returncode == 1 and b"no scalable target" in no_target.stderr
    bad_bounds = hatoba(home, "scaling", "target", "strict", "--min", "3", "--max", "2")
    assert bad_bounds.returncode == 1 and b"minCapacity" in bad_bounds.stderr
    ok(home, "scaling", "target", "strict", "--min", "0", "--max", "2")

    done = hatoba(
        home, "scaling", "policy", "put", "strict", "p",
        "--redis-list", "http://127.0.0.1:6379", "jobs", "--target-per-task", "5",
    )  # fmt: skip
    assert done.returncode == 1, done.stderr.decode()
    err = done.stderr.decode()
    assert "targetTrackingConfiguration.metric.redisList.url" in err and "redis://" in err
    assert "hint: --redis-list" in err and "Traceback" not in err

    usage = hatoba(
        home, "scaling", "policy", "put", "strict", "p", "--redis-list", "redis://x", "k"
    )
    assert usage.returncode == 2 and b"--target-per-task" in usage.stderr

    step = tmp_path / "step.yaml"
    step.write_text(
        "policyType: StepScaling\n"
        "stepScalingConfiguration:\n"
        "  metric: {cpu: {}}\n"
        "  threshold: 80\n"
        "  comparisonOperator: GreaterThanOrEqualToThreshold\n"
        "  stepAdjustments:\n"
        "    - {metricIntervalLowerBound: 0, metricIntervalUpperBound: 10, scalingAdjustment: 1}\n"
        "    - {metricIntervalLowerBound: 10, scalingAdjustment: 2}\n"
        "    - {metricIntervalLowerBound: 5, scalingAdjustment: 3}\n"
    )
    done = hatoba(home, "scaling", "policy", "put", "strict", "hot", "--from-file", str(step))
    assert done.returncode == 1
    assert b"stepScalingConfiguration.stepAdjustments[" in done.stderr
    assert b"overlaps" in done.stderr or b"unbounded" in done.stderr

    bad_cron = hatoba(
        home, "scaling", "schedule", "put", "strict", "night",
        "--schedule", "cron(0 25 * * ? *)", "--max", "1",
    )  # fmt: skip
    assert bad_cron.returncode == 1 and b"schedule" in bad_cron.stderr
    assert b"hint: --schedule" in bad_cron.stderr
    put = as_json(
        home, "scaling", "schedule", "put", "strict", "night",
        "--schedule", "cron(0 22 * * ? *)", "--timezone", "Asia/Tokyo", "--max", "1",
    )  # fmt: skip
    assert put["timezone"] == "Asia/Tokyo" and put["maxCapacity"] == 1
    desc = as_json(home, "scaling", "describe", "strict")
    (action,) = desc["scheduledActions"]
    assert action["nextFireTime"].endswith(("13:00:00Z", "13:00:00+00:00"))  # 22:00 JST
    assert "NEXT" in ok(home, "scaling", "describe", "strict")
    ok(home, "scaling", "schedule", "delete", "strict", "night")

    suspended = as_json(home, "scaling", "target", "strict", "--suspend-in")
    assert suspended["suspendedState"]["dynamicScalingInSuspended"] is True
    assert suspended["maxCapacity"] == 2  # the rest unchanged
    resumed = as_json(home, "scaling", "target", "strict", "--resume-in", "--suspend-out")
    assert resumed["suspendedState"]["dynamicScalingInSuspended"] is False
    assert resumed["suspendedState"]["dynamicScalingOutSuspended"] is True
    assert "strict" in ok(home, "scaling", "list")
    ok(home, "scaling", "remove", "strict")
    missing = hatoba(home, "scaling", "describe", "strict")
    assert missing.returncode == 1 and b"no scalable target" in missing.stderr
