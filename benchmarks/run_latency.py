"""run-task start latency: request -> RUNNING, p50/p99 over N runs of a `true` task,
as a ratio to a bare fork/exec of the same command measured in the same run.

    python -m benchmarks.run_latency [--runs 200]

"request -> RUNNING" is what a client sees over HTTP: POST /v1/tasks, then the long-poll
/wait?status=RUNNING returns (an upper bound on the server-side time). The bare baseline
is subprocess.Popen(["true"]), which returns once exec has succeeded.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time

from benchmarks._server import BenchServer, percentile


def bare_fork_exec(runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        p = subprocess.Popen(["true"])
        out.append((time.perf_counter() - t0) * 1000)
        p.wait()
    return out


def hatoba_runs(server: BenchServer, runs: int) -> list[float]:
    server.call(
        "POST",
        "/v1/task-definitions",
        json={
            "family": "truebench",
            "containerDefinitions": [{"name": "app", "command": ["true"]}],
        },
    )
    out = []
    for i in range(runs + 5):
        t0 = time.perf_counter()
        task = server.call("POST", "/v1/tasks", json={"taskDefinition": "truebench"})["tasks"][0]
        got = server.call(
            "GET", f"/v1/tasks/{task['taskId']}/wait", params={"status": "RUNNING", "timeout": 30}
        )
        elapsed = (time.perf_counter() - t0) * 1000
        assert got["lastStatus"] in (
            "RUNNING",
            "DEACTIVATING",
            "STOPPING",
            "DEPROVISIONING",
            "STOPPED",
        )
        assert got.get("startedAt"), got
        if i >= 5:  # warm-up: first shim compile, connection set-up
            out.append(elapsed)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=200)
    args = ap.parse_args()
    server = BenchServer()
    try:
        bare = bare_fork_exec(args.runs)
        hat = hatoba_runs(server, args.runs)
    finally:
        server.close()
    result = {
        "runs": args.runs,
        "hatoba_p50_ms": round(percentile(hat, 50), 2),
        "hatoba_p99_ms": round(percentile(hat, 99), 2),
        "bare_fork_exec_p50_ms": round(percentile(bare, 50), 3),
        "bare_fork_exec_p99_ms": round(percentile(bare, 99), 3),
    }
    result["ratio_p50"] = round(result["hatoba_p50_ms"] / result["bare_fork_exec_p50_ms"], 1)
    result["ratio_p99"] = round(result["hatoba_p99_ms"] / result["bare_fork_exec_p99_ms"], 1)
    result["target_p50_ms"] = 10
    result["meets_target"] = result["hatoba_p50_ms"] <= 10
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
