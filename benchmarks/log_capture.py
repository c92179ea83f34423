"""Log capture throughput on one node: 10 tasks writing fixed-size lines as fast as they can,
each through its own hatoba-shim into its framed log, then every line counted back through
hatoba's reader (in order, none missing, none torn). The baseline, in the same run: the same
writers with their stdout redirected straight to a file (``writer > file``), raw disk speed.

    python -m benchmarks.log_capture [--tasks 10] [--mb 50] [--line 400]

CPU cost per MB: the shims' (children's CPU minus the baseline writers' own) and the
reader's (this process), against the baseline's writer + kernel cost per MB.
The anchor from the issue: the failing FireLens case moved ~120 KB/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from hatoba.drivers.process import ProcessDriver
from hatoba.drivers.protocol import ContainerSpec
from hatoba.logs.reader import RecordCursor
from hatoba.model.layout import DataLayout

FIRELENS_BYTES_PER_S = 120 * 1000
WRITER_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
/* writer BYTES LINE CPUFILE: lines "%010llu xxx...\n" of LINE bytes until BYTES are
 * written, then its own CPU seconds into CPUFILE */
int main(int argc, char **argv) {
    unsigned long long total = strtoull(argv[1], 0, 10), line = strtoull(argv[2], 0, 10);
    static char buf[1 << 16];
    unsigned long long n = 0, done = 0;
    while (done < total) {
        size_t len = 0;
        while (len + line <= sizeof buf && done + len + line <= total) {
            snprintf(buf + len, 12, "%010llu ", n++);
            memset(buf + len + 11, 'x', line - 12);
            buf[len + line - 1] = '\n';
            len += line;
        }
        if (len == 0) break;
        for (size_t off = 0; off < len;) {
            ssize_t w = write(1, buf + off, len - off);
            if (w < 0) return 1;
            off += (size_t)w;
        }
        done += len;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    FILE *f = fopen(argv[3], "w");
    fprintf(f, "%f\n", ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
                         ru.ru_stime.tv_usec / 1e6);
    fclose(f);
    return 0;
}
"""


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def build_writer(directory: Path) -> Path:
    src, exe = directory / "writer.c", directory / "writer"
    src.write_text(WRITER_C)
    subprocess.run(["cc", "-O2", "-o", str(exe), str(src)], check=True)
    return exe


def writers_cpu(directory: Path) -> float:
    return sum(float(p.read_text()) for p in directory.glob("*.cpu"))


def baseline(writer: Path, tasks: int, per_task: int, line: int, out: Path) -> tuple[float, float]:
    """(seconds, the writers' CPU seconds) for the writers straight into files."""
    out.mkdir()
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen(
            f"{writer} {per_task} {line} {out / f'{i}.cpu'} > {out / str(i)}",
            shell=True,
            stdout=subprocess.DEVNULL,
        )
        for i in range(tasks)
    ]
    for p in procs:
        assert p.wait() == 0
    for i in range(tasks):  # as durable as the shim's log: fsynced
        fd = os.open(out / str(i), os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    wall = time.perf_counter() - t0
    lines = sum((out / str(i)).read_bytes().count(b"\n") for i in range(tasks))
    assert lines == tasks * (per_task // line), "baseline lost lines?"
    return wall, writers_cpu(out)


async def hatoba_run(
    writer: Path, tasks: int, per_task: int, line: int, home: Path
) -> tuple[float, float, list[Path]]:
    """(seconds, the shims' CPU seconds, logs): children's CPU less the writers' own."""
    layout = DataLayout(home)
    driver = ProcessDriver(layout)
    await driver.shim_path()  # compile outside the measurement
    cpu_dir = home / "cpu"
    cpu_dir.mkdir(parents=True)
    specs = []
    for i in range(tasks):
        task_id = f"bench-{uuid.uuid4().hex[:8]}"
        specs.append(
            ContainerSpec(
                task_id=task_id,
                name=f"w{i}",
                argv=[str(writer), str(per_task), str(line), str(cpu_dir / f"{i}.cpu")],
                env={"PATH": "/usr/bin:/bin"},
                state_dir=layout.container_dir(task_id, f"w{i}"),
                log_path=layout.container_log(task_id, f"w{i}"),
            )
        )
    cpu0, t0 = children_cpu(), time.perf_counter()
    handles = await asyncio.gather(*(driver.start(s) for s in specs))
    statuses = await asyncio.gather(*(driver.wait(h) for h in handles))
    wall = time.perf_counter() - t0  # every shim exited: its log fsynced
    shims = children_cpu() - cpu0 - writers_cpu(cpu_dir)
    assert all(s.exit_code == 0 for s in statuses), statuses
    for h in handles:
        await driver.destroy(h)
    return wall, shims, [s.log_path for s in specs]


def count_back(paths: list[Path], per_task: int, line: int) -> tuple[int, float, float]:
    """Every line read back through hatoba's reader, checked: (lines, seconds, CPU)."""
    cpu0, t0 = self_cpu(), time.perf_counter()
    total = 0
    want = per_task // line
    for path in paths:
        cursor = RecordCursor(path)
        n = 0
        while True:
            before = cursor.offset
            for rec, _ in cursor.read():
                data = rec.data
                if len(data) != line - 1 or int(data[:10]) != n:
                    raise AssertionError(f"{path}: line {n} is wrong: {data[:20]!r}")
                n += 1
            if cursor.offset == before:
                break
        assert cursor.offset == path.stat().st_size, f"{path}: torn record at the end"
        assert n == want, f"{path}: {n} lines, want {want}"
        total += n
    return total, time.perf_counter() - t0, self_cpu() - cpu0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=10)
    ap.add_argument("--mb", type=float, default=100, help="MB each task writes")
    ap.add_argument("--line", type=int, default=400, help="bytes per line, newline included")
    ap.add_argument("--rounds", type=int, default=3, help="alternating runs; medians shown")
    args = ap.parse_args()
    per_task = int(args.mb * 1e6) // args.line * args.line
    total_mb = args.tasks * per_task / 1e6
    tmp = Path(tempfile.mkdtemp(prefix="hatoba-logbench-"))
    base_runs, runs = [], []
    try:
        writer = build_writer(tmp)
        for r in range(args.rounds):
            base_runs.append(baseline(writer, args.tasks, per_task, args.line, tmp / f"b{r}"))
            shutil.rmtree(tmp / f"b{r}")
            wall, shims, paths = asyncio.run(
                hatoba_run(writer, args.tasks, per_task, args.line, tmp / f"h{r}")
            )
            lines, read_wall, read_cpu = count_back(paths, per_task, args.line)
            runs.append((wall, shims, read_wall, read_cpu))
            shutil.rmtree(tmp / f"h{r}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    base_wall = statistics.median(b[0] for b in base_runs)
    base_cpu = statistics.median(b[1] for b in base_runs)
    wall, shim_cpu, read_wall, read_cpu = (statistics.median(r[i] for r in runs) for i in range(4))
    mbps, base_mbps = total_mb / wall, total_mb / base_wall
    ms = 1000 / total_mb
    print(
        f"{args.tasks} tasks x {per_task / 1e6:.0f} MB of {args.line}-byte lines "
        f"(median of {args.rounds} rounds)"
    )
    print(
        f"baseline (writer > file):  {base_mbps:8.1f} MB/s   writers' CPU {base_cpu * ms:.2f} ms/MB"
    )
    print(
        f"hatoba capture (shims):    {mbps:8.1f} MB/s   {lines / wall:,.0f} lines/s   "
        f"= {mbps / base_mbps:.2f}x baseline   {mbps * 1e6 / FIRELENS_BYTES_PER_S:,.0f}x the "
        "FireLens anchor (120 KB/s)"
    )
    print(
        f"read back (hatoba reader): {total_mb / read_wall:8.1f} MB/s   "
        f"{lines / read_wall:,.0f} lines/s (one thread, every line checked)"
    )
    print(
        f"zero loss: {lines:,} of {args.tasks * (per_task // args.line):,} lines a round, in order"
    )
    print(
        f"CPU per MB: shims {shim_cpu * ms:.2f} ms + reader {read_cpu * ms:.2f} ms = "
        f"{(shim_cpu + read_cpu) * ms:.2f} ms/MB, {(shim_cpu + read_cpu) / base_cpu:.1f}x "
        "the baseline writers' own"
    )
    print(f"target >= 50 MB/s: {'met' if mbps >= 50 else 'NOT met'}")


if __name__ == "__main__":
    main()
