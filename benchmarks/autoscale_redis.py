"""Autoscaling on a Redis list backlog, end to end: a real control plane (a ``hatoba``
server subprocess: SQLite, process driver), a worker service of real processes, each
BRPOPping one job at a time off a real Redis list and sleeping ``--job-ms`` per job.

    python -m benchmarks.autoscale_redis [--jobs 2000 --job-ms 50 --max 20 --per-task 10
                                          --stabilization 10 --poll 1]

The service runs at min 1 (max 20) with one target tracking policy, AverageValue
``--per-task`` on the list's length. ``--jobs`` are pushed at once; measured:

(a) push → the first new worker RUNNING (its ``startedAt``); target ≤ 2 s. The push comes
    right after a metric read (the run waits for the first one), so (a) holds nearly a whole
    ``--poll`` interval: the worst case;
(b) push → the list empty, as a ratio to the ideal drain time at max workers
    (jobs * job time / max = 5 s) — target ≤ 1.3 — and to the baseline;
(c) list empty → the service back at min (desired, and every extra task STOPPED), with the
    scale-in stabilization window the run configures.

Baseline, in the same run: the same worker script, ``--max`` copies started by hand at once
(``subprocess.Popen``) right after the same push: the ideal with real process overhead.
Anchors: ECS target tracking needs 3 one-minute datapoints (≈ 6 min end to end in AWS's own
benchmark, 109 s with 20-second metrics); KEDA polls every 30 s by default.
"""

from __future__ import annotations

import argparse
import json
import math
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from benchmarks._server import BenchServer

REDIS_URL = "redis://127.0.0.1:6379/0"
SERVICE = "bench-worker"

# RESP by hand (only ``socket``): a worker's start-up is not an import of redis-py.
WORKER = r"""
import signal, socket, sys, time
host, port, key, pause = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode(), float(sys.argv[4])
stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
conn = socket.create_connection((host, port))
reader = conn.makefile("rb")
command = b"*3\r\n$5\r\nBRPOP\r\n$%d\r\n%s\r\n$1\r\n1\r\n" % (len(key), key)
while not stop:
    conn.sendall(command)
    if reader.readline().startswith(b"*-1"):
        continue  # nothing within 1 s
    for _ in range(2):  # the key, then the job
        reader.read(int(reader.readline()[1:]) + 2)
    time.sleep(pause)
"""


class Redis:
    """Just enough of a Redis client for the benchmark's side (LPUSH, LLEN, DEL)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 6379
        self.conn = socket.create_connection((self.host, self.port), timeout=10)
        self.reader = self.conn.makefile("rb")

    def call(self, *args: str) -> Any:
        out = [f"*{len(args)}\r\n".encode()]
        for a in args:
            b = a.encode()
            out.append(b"$%d\r\n%s\r\n" % (len(b), b))
        self.conn.sendall(b"".join(out))
        line = self.reader.readline()
        if line[:1] == b"-":
            raise RuntimeError(line.decode().strip())
        if line[:1] == b":":
            return int(line[1:])
        return line.decode().strip()

    def push(self, key: str, n: int) -> None:
        for start in range(0, n, 500):
            self.call("LPUSH", key, *[f"job-{i}" for i in range(start, min(n, start + 500))])

    def llen(self, key: str) -> int:
        n: int = self.call("LLEN", key)
        return n

    def close(self) -> None:
        self.conn.close()


def worker_argv(r: Redis, key: str, job_ms: float) -> list[str]:
    return [sys.executable, "-c", WORKER, r.host, str(r.port), key, str(job_ms / 1000)]


def wait_empty(r: Redis, key: str, t0: float, timeout: float) -> float:
    while r.llen(key) > 0:
        if time.monotonic() - t0 > timeout:
            raise RuntimeError(f"{key} not drained after {timeout:g}s")
        time.sleep(0.005)
    return time.monotonic() - t0


def baseline(r: Redis, jobs: int, job_ms: float, workers: int) -> dict[str, Any]:
    """``workers`` processes started at once right after the push: time to empty."""
    key = f"hatoba-bench-{secrets.token_hex(4)}"
    r.push(key, jobs)
    t0 = time.monotonic()
    procs = [subprocess.Popen(worker_argv(r, key, job_ms)) for _ in range(workers)]
    try:
        drained = wait_empty(r, key, t0, 120)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(10)
        r.call("DEL", key)
    return {"workers": workers, "drain_s": round(drained, 3)}


def _started(task: dict[str, Any]) -> float | None:
    at = task.get("startedAt")
    return None if at is None else datetime.fromisoformat(at).timestamp()


def hatoba_run(r: Redis, args: argparse.Namespace, server: BenchServer) -> dict[str, Any]:
    key = f"hatoba-bench-{secrets.token_hex(4)}"
    td = {
        "family": SERVICE,
        "containerDefinitions": [
            {"name": "worker", "command": worker_argv(r, key, args.job_ms), "stopTimeout": 3}
        ],
    }
    server.call("POST", "/v1/task-definitions", json=td)
    body = {"serviceName": SERVICE, "taskDefinition": SERVICE, "desiredCount": args.min}
    server.call("POST", "/v1/services", json=body)
    base = f"/v1/services/{SERVICE}"
    server.call("PUT", f"{base}/scaling", json={"minCapacity": args.min, "maxCapacity": args.max})
    policy = {
        "policyType": "TargetTrackingScaling",
        "targetTrackingConfiguration": {
            "metric": {"redisList": {"url": REDIS_URL, "key": key}, "pollInterval": args.poll},
            "metricType": "AverageValue",
            "targetValue": args.per_task,
            "scaleInStabilizationSeconds": args.stabilization,
        },
    }
    server.call("PUT", f"{base}/scaling/policies/backlog", json=policy)

    def live() -> list[dict[str, Any]]:
        tasks: list[dict[str, Any]] = server.call("GET", f"{base}/tasks")["tasks"]
        return tasks

    deadline = time.monotonic() + 60
    while True:  # steady at min, and the metric read once (its poller runs)
        tasks = live()
        desc = server.call("GET", f"{base}/scaling/describe")
        running = [t for t in tasks if t["lastStatus"] == "RUNNING"]
        if (
            len(running) == args.min
            and desc.get("metrics", {}).get("backlog", {}).get("value") == 0
        ):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"service not steady: {len(running)} running, {desc}")
        time.sleep(0.1)
    initial = {t["taskId"] for t in tasks}

    push_wall = time.time()
    t0 = time.monotonic()
    r.push(key, args.jobs)
    first_new: float | None = None
    peak_desired, peak_running = args.min, args.min
    timeline: list[tuple[float, int, int, int]] = []
    drained: float | None = None
    next_poll = t0
    while drained is None:
        now = time.monotonic()
        if r.llen(key) == 0:
            drained = now - t0
            break
        if now >= next_poll:
            next_poll = now + 0.1
            service = server.call("GET", base)
            tasks = live()
            running = sum(1 for t in tasks if t["lastStatus"] == "RUNNING")
            peak_desired = max(peak_desired, service["desiredCount"])
            peak_running = max(peak_running, running)
            timeline.append((round(now - t0, 2), r.llen(key), service["desiredCount"], running))
            for t in tasks:
                at = _started(t)
                if t["taskId"] not in initial and at is not None:
                    first_new = min(first_new or math.inf, at - push_wall)
        if now - t0 > 300:
            raise RuntimeError("backlog not drained after 300 s")
        time.sleep(0.005)
    if first_new is None:  # drained before a poll saw a new task start
        for t in live():
            at = _started(t)
            if t["taskId"] not in initial and at is not None:
                first_new = min(first_new or math.inf, at - push_wall)

    t_empty = time.monotonic()
    back_desired: float | None = None
    while True:
        service = server.call("GET", base)
        now = time.monotonic() - t_empty
        if back_desired is None and service["desiredCount"] == args.min:
            back_desired = now
        if back_desired is not None and len(live()) == args.min:
            back_all = now
            break
        if now > args.stabilization + 120:
            raise RuntimeError("not back at min after the window + 120 s")
        time.sleep(0.05)
    activities = server.call("GET", f"{base}/scaling/activities")["activities"]
    moves = [f"{a['fromCount']}->{a['toCount']}" for a in reversed(activities)]
    server.call("DELETE", f"{base}/scaling")
    server.call("DELETE", base, params={"force": "true"})
    r.call("DEL", key)
    return {
        "first_new_worker_running_s": None if first_new is None else round(first_new, 3),
        "drain_s": round(drained, 3),
        "back_to_min_desired_s": round(back_desired or 0.0, 3),
        "back_to_min_all_stopped_s": round(back_all, 3),
        "peak_desired": peak_desired,
        "peak_running": peak_running,
        "activities": moves,
        "timeline": [
            f"{t:5.2f}s backlog {n:4d} desired {d:2d} running {k:2d}"
            for t, n, d, k in timeline[:: max(1, len(timeline) // 20)]
        ],
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=2000)
    ap.add_argument("--job-ms", type=float, default=50.0)
    ap.add_argument("--min", type=int, default=1)
    ap.add_argument("--max", type=int, default=20)
    ap.add_argument("--per-task", type=float, default=10.0, help="AverageValue target")
    ap.add_argument("--stabilization", type=int, default=10, help="scale-in window, seconds")
    ap.add_argument("--poll", type=float, default=1.0, help="metric poll interval, seconds")
    args = ap.parse_args(argv)
    r = Redis(REDIS_URL)
    ideal = args.jobs * args.job_ms / 1000 / args.max
    base = baseline(r, args.jobs, args.job_ms, args.max)
    server = BenchServer()
    try:
        run = hatoba_run(r, args, server)
    finally:
        server.close()
        r.close()
    first = run["first_new_worker_running_s"]
    result: dict[str, Any] = {
        "jobs": args.jobs,
        "job_ms": args.job_ms,
        "min": args.min,
        "max": args.max,
        "target_per_task": args.per_task,
        "metric_poll_interval_s": args.poll,
        "scale_in_stabilization_s": args.stabilization,
        "ideal_drain_s": round(ideal, 3),
        "baseline_hand_started": base,
        "hatoba": run,
        "a_push_to_first_new_running_s": first,
        "b_drain_ratio_vs_ideal": round(run["drain_s"] / ideal, 2),
        "b_drain_ratio_vs_baseline": round(run["drain_s"] / base["drain_s"], 2),
        "c_empty_to_min_s": run["back_to_min_all_stopped_s"],
        "targets": {"a_s": 2.0, "b_ratio_vs_ideal": 1.3},
        "meets_targets": first is not None and first <= 2.0 and run["drain_s"] / ideal <= 1.3,
        "anchors": {"ecs_target_tracking_s": 360, "ecs_20s_metrics_s": 109, "keda_poll_s": 30},
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
