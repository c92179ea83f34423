"""Memory overhead per running task: 100 sleeping tasks, hatoba's own memory per task
(the task shims' PSS plus the control plane's growth), as a ratio to the rejected design
measured in the same run: one minimal Python supervisor process per task.

    python -m benchmarks.task_memory [--tasks 100]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import psutil

from benchmarks._server import BenchServer


def pss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def python_supervisor_baseline(n: int) -> float:
    """PSS (KiB) per process of the lightest possible Python supervisor, n at once."""
    code = (
        "import subprocess,sys; p=subprocess.Popen(['sleep','600']);"
        "sys.stdout.write('r\\n'); sys.stdout.flush(); p.wait()"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE) for _ in range(n)
    ]
    try:
        for p in procs:
            assert p.stdout is not None
            p.stdout.readline()
        return sum(pss_kib(p.pid) for p in procs) / n
    finally:
        for p in procs:
            for child in psutil.Process(p.pid).children():
                child.kill()
            p.kill()
            p.wait()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=100)
    args = ap.parse_args()
    n = args.tasks
    server = BenchServer()
    try:
        server.call(
            "POST",
            "/v1/task-definitions",
            json={
                "family": "sleeper",
                "containerDefinitions": [{"name": "app", "command": ["sleep", "600"]}],
            },
        )
        # warm up (shim compile, first allocations), then measure the control plane before
        warm = server.call("POST", "/v1/tasks", json={"taskDefinition": "sleeper"})["tasks"][0]
        server.call("GET", f"/v1/tasks/{warm['taskId']}/wait", params={"status": "RUNNING"})
        time.sleep(0.5)
        cp_before = pss_kib(server.proc.pid)
        ids = []
        for _ in range(n):
            t = server.call("POST", "/v1/tasks", json={"taskDefinition": "sleeper"})["tasks"][0]
            ids.append(t["taskId"])
        shim_pids = []
        for task_id in ids:
            t = server.call("GET", f"/v1/tasks/{task_id}/wait", params={"status": "RUNNING"})
            shim_pids.append(t["containers"][0]["handle"]["shim_pid"])
        time.sleep(1.0)
        cp_after = pss_kib(server.proc.pid)
        shims = sum(pss_kib(p) for p in shim_pids)
        for task_id in [warm["taskId"], *ids]:
            server.call("POST", f"/v1/tasks/{task_id}/stop", json={})
        for task_id in [warm["taskId"], *ids]:
            server.call("GET", f"/v1/tasks/{task_id}/wait", params={"status": "STOPPED"})
    finally:
        server.close()
    baseline = python_supervisor_baseline(min(n, 20))
    per_task = (shims + max(0, cp_after - cp_before)) / n
    result = {
        "tasks": n,
        "shim_pss_kib_per_task": round(shims / n, 1),
        "control_plane_growth_kib_per_task": round(max(0, cp_after - cp_before) / n, 1),
        "hatoba_overhead_mib_per_task": round(per_task / 1024, 3),
        "python_supervisor_baseline_mib_per_task": round(baseline / 1024, 3),
        "ratio_to_python_supervisor": round(per_task / baseline, 3),
        "target_mib_per_task": 5,
        "meets_target": per_task / 1024 <= 5,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
