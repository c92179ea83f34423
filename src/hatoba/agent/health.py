"""Container health checks, Docker/ECS semantics with one improvement: the first check
runs right after start instead of one interval later, so ``dependsOn: HEALTHY`` and
deployments don't wait 30 s for nothing.

A check passes when its command exits 0 within ``timeout``. Failures during
``startPeriod`` don't count; ``retries`` consecutive failures make the container UNHEALTHY;
one success makes it HEALTHY.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from hatoba.drivers.protocol import ExecProcess, ExecSpec
from hatoba.model.clock import Clock
from hatoba.model.task import HealthStatus


@dataclass(frozen=True)
class HealthPolicy:
    argv: list[str]
    interval: float
    timeout: float
    retries: int
    start_period: float


def health_argv(command: list[str]) -> list[str]:
    """ECS form: ["CMD-SHELL", "curl -f localhost"] or ["CMD", "curl", "-f", "localhost"]."""
    if command and command[0] == "CMD-SHELL":
        return ["/bin/sh", "-c", " ".join(command[1:])]
    if command and command[0] == "CMD":
        return list(command[1:])
    return list(command)


@dataclass
class HealthState:
    status: HealthStatus = HealthStatus.UNKNOWN
    failures: int = 0

    def record(self, ok: bool, in_start_period: bool, retries: int) -> bool:
        """Apply one check's result; True when the status changed. Pure."""
        before = self.status
        if ok:
            self.failures = 0
            self.status = HealthStatus.HEALTHY
        elif not in_start_period:
            self.failures += 1
            if self.failures >= retries:
                self.status = HealthStatus.UNHEALTHY
        return self.status != before


async def run_check(
    start: Callable[[ExecSpec], Awaitable[ExecProcess]], argv: list[str], timeout: float
) -> bool:
    try:
        proc = await start(ExecSpec(argv=argv))
    except Exception:
        return False
    try:
        async with asyncio.timeout(timeout):
            while await proc.read_output() is not None:
                pass
            return await proc.wait() == 0
    except TimeoutError:
        with contextlib.suppress(Exception):
            await proc.kill()
        return False


async def health_loop(
    policy: HealthPolicy,
    start: Callable[[ExecSpec], Awaitable[ExecProcess]],
    clock: Clock,
    report: Callable[[HealthStatus, int], Awaitable[None]],
) -> None:
    """Check forever (until cancelled), calling ``report`` on every status change."""
    state = HealthState()
    began = clock.now()
    while True:
        ok = await run_check(start, policy.argv, policy.timeout)
        in_grace = (clock.now() - began).total_seconds() < policy.start_period
        if state.record(ok, in_grace, policy.retries):
            await report(state.status, state.failures)
        await clock.sleep(policy.interval)
