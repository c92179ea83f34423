"""Job scheduler scale: 10,000 enabled schedules on one in-process control plane (real
SQLite, real process driver): CPU seconds it uses per minute while idle, what a full resync
pass costs, and the fire precision of a per-second probe job under that load. The baseline,
in the same run: the same control plane holding 1 schedule.

    python -m benchmarks.job_scale [--jobs 10000] [--seconds 60] [--ticks 60]

The schedules are a mix of AWS 6-field and classic 5-field crons (hourly, daily, weekdays,
monthly with L/W/#, in four time zones) and rates (hours, days), each drawn so that its next
fire is more than ``--horizon`` away: what is measured is the cost of holding them, not of
starting 10,000 tasks (the run says how many non-probe runs happened anyway: 0 expected).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil

from benchmarks._jobs import measure_job, per_second_control_plane, ratio, register_command
from benchmarks._server import percentile
from hatoba.api.services import ApiServices
from hatoba.model.job import JobSpec
from hatoba.model.schedule import parse_schedule

ZONES = ("UTC", "Asia/Tokyo", "America/New_York", "Europe/Berlin")
SETTLE_SECONDS = 5.0


def expression(rng: random.Random) -> str:
    m, h = rng.randrange(60), rng.randrange(24)
    kind = rng.random()
    if kind < 0.10:
        return f"cron({m} * * * ? *)"  # hourly
    if kind < 0.45:
        return f"cron({m} {h} * * ? *)"  # daily
    if kind < 0.60:
        return f"cron({m} {h} ? * MON-FRI *)"  # weekdays
    if kind < 0.70:
        day = rng.choice(["L", "15W", "1", "LW"])
        return f"cron({m} {h} {day} * ? *)"  # monthly
    if kind < 0.75:
        return f"cron({m} {h} ? * {rng.randrange(1, 8)}#{rng.randrange(1, 5)} *)"  # nth weekday
    if kind < 0.85:
        return f"{m} {h} * * {rng.randrange(7)}"  # classic, weekly
    if kind < 0.95:
        return f"rate({rng.randrange(2, 48)} hours)"
    return f"rate({rng.randrange(2, 30)} days)"


def schedules(n: int, horizon: timedelta, seed: int = 7) -> list[tuple[str, str]]:
    """``n`` (expression, zone) whose next fire is more than ``horizon`` from now."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    out: list[tuple[str, str]] = []
    while len(out) < n:
        expr, zone = expression(rng), rng.choice(ZONES)
        nxt = parse_schedule(expr, zone).next_after(now)
        if nxt is not None and nxt > now + horizon:
            out.append((expr, zone))
    return out


async def create_jobs(cp: ApiServices, n: int, horizon: timedelta) -> float:
    """Through the controller (validated, as the API would); returns seconds taken."""
    await register_command(cp, "idle")
    t0 = time.perf_counter()
    for i, (expr, zone) in enumerate(schedules(n, horizon)):
        await cp.jobs.create(
            JobSpec(job_name=f"job-{i:05d}", task_definition="idle", schedule=expr, timezone=zone)
        )
    return time.perf_counter() - t0


async def one_load(n: int, seconds: float, ticks: int, horizon: timedelta) -> dict[str, float]:
    proc = psutil.Process()
    with tempfile.TemporaryDirectory(prefix="hatoba-bench-") as tmp:
        async with per_second_control_plane(Path(tmp) / "home") as cp:
            created = await create_jobs(cp, n, horizon)
            await asyncio.sleep(SETTLE_SECONDS)  # the scheduler looks at each new job once
            assert cp.job_scheduler is not None
            t0 = time.perf_counter()
            await cp.job_scheduler.resync()
            resync = time.perf_counter() - t0
            rss = proc.memory_info().rss
            c0, w0 = proc.cpu_times(), time.perf_counter()
            await asyncio.sleep(seconds)
            c1, w1 = proc.cpu_times(), time.perf_counter()
            cpu = (c1.user + c1.system) - (c0.user + c0.system)
            per_minute = cpu / (w1 - w0) * 60
            await register_command(cp, "probe")
            got = await measure_job(cp, "probe", "probe", ticks)
            fired = len(await cp.store.active_job_runs())
            for job in await cp.jobs.list():
                if job.job_name != "probe":
                    fired += len(await cp.store.list_job_runs(job.job_name, limit=1))
    label = f"{n} schedule{'s' if n != 1 else ''}"
    print(
        f"{label}: created in {created:.1f} s; idle CPU {per_minute:.3f} s/min "
        f"(over {w1 - w0:.0f} s); full resync pass {resync * 1000:.1f} ms "
        f"(every 300 s: {resync / 5:.4f} s/min); RSS {rss / 2**20:.0f} MiB; "
        f"non-probe runs {fired}",
        flush=True,
    )
    print("  " + got.line("probe under load"), flush=True)
    return {
        "cpu": per_minute + resync / 5,
        "p50": percentile(got.running_ms, 50) if got.running_ms else float("nan"),
        "p99": percentile(got.running_ms, 99) if got.running_ms else float("nan"),
        "rss": rss,
        "missed": got.missed,
    }


async def run(jobs: int, seconds: float, ticks: int, horizon: timedelta) -> int:
    base = await one_load(1, seconds, ticks, horizon)
    load = await one_load(jobs, seconds, ticks, horizon)
    print(
        f"CPU per minute idle (resync amortized): {load['cpu']:.3f} s vs {base['cpu']:.3f} s "
        f"with 1 schedule = {ratio(load['cpu'], base['cpu'])} "
        f"(+{load['cpu'] - base['cpu']:.3f} s/min, {100 * load['cpu'] / 60:.2f}% of a core)"
    )
    print(
        f"probe precision with {jobs} schedules: p50 {load['p50']:.1f} ms, p99 "
        f"{load['p99']:.1f} ms vs {base['p50']:.1f} / {base['p99']:.1f} ms with 1 = "
        f"p50 {ratio(load['p50'], base['p50'])}, p99 {ratio(load['p99'], base['p99'])}"
    )
    print(f"RSS: +{(load['rss'] - base['rss']) / 2**20:.0f} MiB for {jobs - 1} more schedules")
    return 0 if load["missed"] == 0 and base["missed"] == 0 else 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--seconds", type=float, default=60.0, help="idle CPU window")
    ap.add_argument("--ticks", type=int, default=60, help="probe ticks (after 3 warm-up)")
    ap.add_argument("--horizon", type=float, default=60.0, help="minutes before any schedule fires")
    args = ap.parse_args()
    horizon = timedelta(minutes=args.horizon)
    raise SystemExit(asyncio.run(run(args.jobs, args.seconds, args.ticks, horizon)))


if __name__ == "__main__":
    main()
