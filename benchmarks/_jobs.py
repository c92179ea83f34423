"""What the job benchmarks share: an in-process control plane (real SQLite, real process
driver) that knows per-second schedules, fire-precision measurement of a job, and the
baseline: a bare asyncio timer firing a fork/exec at each tick (a cron daemon at its best)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.controllers.jobs_support import parse_with_seconds

from benchmarks._server import percentile
from hatoba.api.services import ApiServices
from hatoba.config import Settings
from hatoba.model.job import JobRun, JobSpec, OverlapPolicy
from hatoba.server import control_plane

COMMAND = ["true"]
WARMUP_TICKS = 3  # the first shim compile and cold caches


@contextlib.asynccontextmanager
async def per_second_control_plane(home: Path) -> AsyncIterator[ApiServices]:
    """``hatoba.server.control_plane`` with the ``every(N)`` schedule hook installed, once
    its job scheduler leads."""
    async with control_plane(Settings(home=home), autoscaling=False) as cp:
        assert cp.job_scheduler is not None
        cp.job_scheduler.parse = parse_with_seconds
        cp.jobs.parse = parse_with_seconds
        await asyncio.wait_for(cp.job_scheduler.is_leader.wait(), 30)
        yield cp


async def register_command(cp: ApiServices, family: str) -> None:
    await cp.task_definitions.register(
        {"family": family, "containerDefinitions": [{"name": "main", "command": COMMAND}]}
    )


@dataclass
class Precision:
    """Milliseconds from each tick's scheduled time to its task RUNNING (``startedAt``),
    and to the run's claim (its first attempt's ``startedAt``: the scheduler acted)."""

    running_ms: list[float] = field(default_factory=list)
    claim_ms: list[float] = field(default_factory=list)
    missed: int = 0  # ticks with no run, or a run that never had a RUNNING task

    def line(self, label: str) -> str:
        r = self.running_ms
        if not r:
            return f"{label}: no tick measured ({self.missed} missed)"
        c = self.claim_ms
        return (
            f"{label}: tick -> RUNNING p50 {percentile(r, 50):.1f} ms, p99 "
            f"{percentile(r, 99):.1f} ms, max {max(r):.1f} ms over {len(r)} ticks "
            f"(tick -> claimed p50 {percentile(c, 50):.1f} ms, p99 {percentile(c, 99):.1f} ms; "
            f"{self.missed} missed)"
        )


async def measure_job(cp: ApiServices, name: str, family: str, ticks: int) -> Precision:
    """Create a per-second job of ``family``, let it fire ``ticks`` (+ warm-up) times, then
    read its runs and their tasks back from the store (nothing polls while it runs)."""
    await cp.jobs.create(
        JobSpec(
            job_name=name,
            task_definition=family,
            schedule="every(1)",
            overlap_policy=OverlapPolicy.ALLOW,
        )
    )
    total = ticks + WARMUP_TICKS
    await asyncio.sleep(total + 1.5)
    await cp.jobs.disable(name)
    await asyncio.sleep(1.0)  # the last tasks record RUNNING
    runs = [r for r in await cp.jobs.history(name, limit=total + 50) if r.tick is not None]
    runs.sort(key=lambda r: r.tick or r.created_at)
    return await _precision(cp, runs[WARMUP_TICKS:total])


async def _precision(cp: ApiServices, runs: list[JobRun]) -> Precision:
    out = Precision()
    for run in runs:
        assert run.tick is not None
        task = await cp.store.get_task(run.task_ids[0]) if run.task_ids else None
        if task is None or task.started_at is None:
            out.missed += 1
            continue
        out.running_ms.append((task.started_at - run.tick).total_seconds() * 1000)
        out.claim_ms.append((run.attempts[0].started_at - run.tick).total_seconds() * 1000)
    return out


async def bare_timer(ticks: int, period: float = 1.0) -> list[float]:
    """The baseline: an asyncio timer sleeping until each whole ``period`` of the wall clock,
    then fork/exec of the command (``Popen`` returns once exec has succeeded); ms late."""
    late: list[float] = []
    children: list[subprocess.Popen[bytes]] = []
    for i in range(ticks + WARMUP_TICKS):
        target = (time.time() // period + 1) * period
        await asyncio.sleep(target - time.time())
        child = subprocess.Popen(COMMAND)  # noqa: ASYNC220 - the bare fork/exec, on purpose
        ran = time.time()
        children.append(child)
        if i >= WARMUP_TICKS:
            late.append((ran - target) * 1000)
        for c in [c for c in children if c.poll() is not None]:
            children.remove(c)
    for c in children:
        c.wait()
    return late


def baseline_line(label: str, late: list[float]) -> str:
    return (
        f"{label}: tick -> exec'd p50 {percentile(late, 50):.1f} ms, p99 "
        f"{percentile(late, 99):.1f} ms, max {max(late):.1f} ms over {len(late)} ticks"
    )


def ratio(a: float, b: float) -> str:
    return f"{a / b:.1f}x" if b > 0 else "n/a"
