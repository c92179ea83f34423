"""Where a run-task start spends its time: a timeline per task across client and server.

    python -m benchmarks.start_path_profile [--runs 100] [--cprofile FILE]

Starts a real server subprocess (as ``run_latency`` does) whose hot-path functions are
wrapped with timers: every call records (start, end) on CLOCK_MONOTONIC, which the client
shares, so server spans line up with the client's POST and /wait. Prints, per span name, the
median start offset from the POST and the median duration, plus the median of the whole
request -> RUNNING. ``--cprofile FILE`` also runs the server under cProfile and dumps stats
there (``python -m pstats FILE``). A measurement aid only: the wrappers add a few us each.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from benchmarks import _server

# Runs inside the server subprocess: wrap functions, dump spans at exit.
INSTRUMENT = r"""
import atexit, functools, inspect, json, os, threading, time
SPANS = []
def _wrap(owner, name, label):
    fn = getattr(owner, name)
    if inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def w(*a, **k):
            t0 = time.monotonic_ns()
            try:
                return await fn(*a, **k)
            finally:
                SPANS.append((label, t0, time.monotonic_ns(), threading.get_ident()))
    else:
        @functools.wraps(fn)
        def w(*a, **k):
            t0 = time.monotonic_ns()
            try:
                return fn(*a, **k)
            finally:
                SPANS.append((label, t0, time.monotonic_ns(), threading.get_ident()))
    setattr(owner, name, w)

from hatoba.store.sql import SqlStore
from hatoba.store.runner import SqliteRunner
from hatoba.controllers.tasks import Tasks
from hatoba.agent.runner import TaskRunner
from hatoba.agent import node_agent
from hatoba.drivers.process import driver as drv
for n in [m for m in vars(SqlStore) if not m.startswith("_")]:
    if callable(getattr(SqlStore, n)):
        _wrap(SqlStore, n, "store." + n)
_wrap(SqliteRunner, "_call", "sqlite-thread")
for n in ("run", "wait_for", "resolve"):
    _wrap(Tasks, n, "Tasks." + n)
for n in ("_step", "specs", "_start_ready", "_decide", "_stop", "_record_exit"):
    _wrap(TaskRunner, n, "runner." + n)
_wrap(node_agent.NodeAgent, "offer", "agent.offer")
for n in ("start", "_spawn", "wait", "destroy"):
    _wrap(drv.ProcessDriver, n, "driver." + n)
_wrap(drv, "_spawn_shim", "driver._spawn_shim")
_wrap(drv, "_read_line", "driver._read_line")

from hatoba.api import auth, app as api_app
_wrap(auth, "authenticated", "api.auth.authenticated")
_create_app = api_app.create_app
def _create_app_timed(services):
    inner = _create_app(services)
    async def timed(scope, receive, send):
        t0 = time.monotonic_ns()
        try:
            await inner(scope, receive, send)
        finally:
            path = scope.get("path", "")
            label = "asgi " + scope.get("method", "") + " " + path.rsplit("/", 1)[-1][:8]
            SPANS.append((label, t0, time.monotonic_ns(), threading.get_ident()))
    return timed
api_app.create_app = _create_app_timed
import hatoba.server
hatoba.server.create_app = _create_app_timed

def _dump():
    with open(os.environ["HATOBA_SPANS"], "w") as f:
        json.dump(SPANS, f)
atexit.register(_dump)
import signal, sys
# uvicorn restores this handler and re-raises SIGTERM after its shutdown: exit cleanly so
# the atexit hooks (spans, cProfile) run
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--gap", type=float, default=0.0, help="seconds between runs (0: back to back)")
    ap.add_argument("--cprofile", default=None, help="dump the server's cProfile stats here")
    args = ap.parse_args()
    spans_file = Path(tempfile.mkdtemp(prefix="hatoba-spans-")) / "spans.json"
    os.environ["HATOBA_SPANS"] = str(spans_file)
    code = INSTRUMENT + _server.SERVER
    if args.cprofile:
        code = (
            INSTRUMENT
            + "\nimport cProfile, atexit; _p = cProfile.Profile(); _p.enable();"
            + f"atexit.register(lambda: (_p.disable(), _p.dump_stats({args.cprofile!r})))\n"
            + _server.SERVER
        )
    _server.SERVER = code
    server = _server.BenchServer()
    server.call(
        "POST",
        "/v1/task-definitions",
        json={
            "family": "truebench",
            "containerDefinitions": [{"name": "app", "command": ["true"]}],
        },
    )
    client: list[tuple[int, int, int]] = []  # POST start, POST end, wait end
    for i in range(args.runs + 5):
        time.sleep(args.gap)
        t0 = time.monotonic_ns()
        task = server.call("POST", "/v1/tasks", json={"taskDefinition": "truebench"})["tasks"][0]
        t1 = time.monotonic_ns()
        server.call(
            "GET", f"/v1/tasks/{task['taskId']}/wait", params={"status": "RUNNING", "timeout": 30}
        )
        t2 = time.monotonic_ns()
        if i >= 5:
            client.append((t0, t1, t2))
    server.close()
    spans = json.loads(spans_file.read_text())
    by_run: dict[int, list[tuple[str, int, int]]] = defaultdict(list)
    starts = [c[0] for c in client]
    for label, s, e, _tid in spans:
        # the run whose window [POST start, next POST start) holds the span's start
        idx = None
        for i, t0 in enumerate(starts):
            if t0 <= s:
                idx = i
            else:
                break
        if idx is not None:
            by_run[idx].append((label, s - starts[idx], e - s))
    offsets: dict[str, list[float]] = defaultdict(list)
    durations: dict[str, list[float]] = defaultdict(list)
    counts: dict[str, int] = defaultdict(int)
    for items in by_run.values():
        first: dict[str, tuple[int, int]] = {}
        for label, off, dur in items:
            counts[label] += 1
            if label not in first:
                first[label] = (off, dur)
            durations[label].append(dur / 1e6)
        for label, (off, _dur) in first.items():
            offsets[label].append(off / 1e6)
    total = [(c[2] - c[0]) / 1e6 for c in client]
    post = [(c[1] - c[0]) / 1e6 for c in client]
    wait = [(c[2] - c[1]) / 1e6 for c in client]
    print(f"request->RUNNING p50 {statistics.median(total):.2f} ms", file=sys.stderr)
    print(f"  POST p50 {statistics.median(post):.2f} ms, /wait p50 {statistics.median(wait):.2f}")
    print(f"{'span':32} {'calls/run':>9} {'first@ p50':>10} {'dur p50':>8} {'dur sum/run':>11}")
    rows = sorted(offsets, key=lambda k: statistics.median(offsets[k]))
    n = len(client)
    for label in rows:
        print(
            f"{label:32} {counts[label] / n:9.2f} {statistics.median(offsets[label]):10.2f} "
            f"{statistics.median(durations[label]):8.2f} {sum(durations[label]) / n:11.2f}"
        )


if __name__ == "__main__":
    main()
