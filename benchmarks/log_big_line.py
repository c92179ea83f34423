"""A 1 MiB single line (random bytes, so not UTF-8) round-trips byte-exact, end to end: a
task ``cat``s it, its shim captures it, ``GET /v1/logs`` returns it (base64 in NDJSON) and
it is compared byte for byte; also a 3 MiB line, cut into PARTIAL records at the 1 MiB
maximum and joined back. Timed against the baseline in the same run: ``cat FILE > out``
and reading ``out`` back.

    python -m benchmarks.log_big_line [--runs 5]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks._server import BenchServer

MIB = 1024 * 1024


def payload(path: Path, size: int) -> bytes:
    data = os.urandom(size).replace(b"\n", b"\x00")
    path.write_bytes(data + b"\n")
    return data


def baseline(src: Path, out: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(f"cat {src} > {out}", shell=True, check=True)
    assert out.read_bytes() == src.read_bytes()
    return time.perf_counter() - t0


def round_trip(server: BenchServer, family: str, expected: bytes, raw: bool = False) -> float:
    """Seconds from RunTask to the line decoded and checked (exact bytes)."""
    t0 = time.perf_counter()
    task = server.call("POST", "/v1/tasks", json={"taskDefinition": family})["tasks"][0]
    done = server.call(
        "GET", f"/v1/tasks/{task['taskId']}/wait", params={"status": "STOPPED", "timeout": 60}
    )
    assert done["lastStatus"] == "STOPPED" and done["containers"][0]["exitCode"] == 0
    r = server.http.get(
        "/v1/logs", params={"target": task["taskId"], "raw": "true" if raw else "false"}
    )
    lines = [json.loads(x) for x in r.text.splitlines()]
    elapsed = time.perf_counter() - t0
    got = [base64.b64decode(o["messageBase64"]) for o in lines]
    if raw:
        assert [o.get("partial", False) for o in lines] == [True] * (len(lines) - 1) + [False]
        assert all(len(g) <= MIB for g in got) and b"".join(got) == expected
    else:
        assert got == [expected], "the line did not come back byte-exact"
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="hatoba-bigline-"))
    one, three = payload(tmp / "one", MIB), payload(tmp / "three", 3 * MIB)
    server = BenchServer()
    try:
        for family, src in (("one", tmp / "one"), ("three", tmp / "three")):
            server.call(
                "POST",
                "/v1/task-definitions",
                json={
                    "family": family,
                    "containerDefinitions": [{"name": "app", "command": ["cat", str(src)]}],
                },
            )
        round_trip(server, "one", one)  # warm up (shim compile)
        base = [baseline(tmp / "one", tmp / "out") for _ in range(args.runs)]
        ours = [round_trip(server, "one", one) for _ in range(args.runs)]
        big = [round_trip(server, "three", three) for _ in range(args.runs)]
        round_trip(server, "three", three, raw=True)
    finally:
        server.close()
    b, o, t = statistics.median(base), statistics.median(ours), statistics.median(big)
    print(f"1 MiB line, byte-exact through task -> shim -> GET /v1/logs: {o * 1000:.1f} ms")
    print(f"baseline cat FILE > out + read back:                          {b * 1000:.1f} ms")
    print(f"ratio: {o / b:.1f}x (the task's whole life included: start, exit, STOPPED)")
    print(f"3 MiB line (three 1 MiB records, two PARTIAL) joined back exact: {t * 1000:.1f} ms")
    print(f"median of {args.runs} runs each; every run compared byte for byte")


if __name__ == "__main__":
    main()
