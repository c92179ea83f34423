"""Pure decisions about a task's containers: what may start, what can never start,
in which order to stop, and the task's health. No I/O, no asyncio."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from hatoba.model.task import Container, ContainerStatus, HealthStatus


@dataclass(frozen=True)
class Dependency:
    container: str
    condition: str  # START | COMPLETE | SUCCESS | HEALTHY


Dependencies = Mapping[str, Sequence[Dependency]]


def _satisfied(dep: Dependency, target: Container) -> bool:
    if dep.condition == "START":
        return target.last_status in (ContainerStatus.RUNNING, ContainerStatus.STOPPED) and (
            target.started_at is not None
        )
    if dep.condition == "COMPLETE":
        return target.last_status == ContainerStatus.STOPPED and target.exit_code is not None
    if dep.condition == "SUCCESS":
        return target.last_status == ContainerStatus.STOPPED and target.exit_code == 0
    if dep.condition == "HEALTHY":
        return (
            target.last_status == ContainerStatus.RUNNING
            and target.health_status == HealthStatus.HEALTHY
        )
    return False


def startable(containers: Sequence[Container], deps: Dependencies) -> list[str]:
    """PENDING containers (never started) whose every dependency is satisfied now."""
    by_name = {c.name: c for c in containers}
    out = []
    for c in containers:
        if c.last_status != ContainerStatus.PENDING or c.started_at is not None:
            continue
        if c.reason is not None:  # failed to start already
            continue
        if all(_satisfied(d, by_name[d.container]) for d in deps.get(c.name, ())):
            out.append(c.name)
    return out


def blocked_forever(containers: Sequence[Container], deps: Dependencies) -> str | None:
    """A reason when some container still waiting can never start, else None."""
    by_name = {c.name: c for c in containers}
    for c in containers:
        if c.last_status != ContainerStatus.PENDING or c.started_at is not None:
            continue
        for d in deps.get(c.name, ()):
            t = by_name[d.container]
            if t.last_status != ContainerStatus.STOPPED:
                continue
            if d.condition == "SUCCESS" and t.exit_code != 0:
                return (
                    f"DependencyError: container {c.name!r} depends on {t.name!r} "
                    f"succeeding, but it exited with {t.exit_code}"
                )
            if d.condition in ("HEALTHY", "START") and not _satisfied(d, t):
                return (
                    f"DependencyError: container {c.name!r} depends on {t.name!r} "
                    f"being {d.condition}, but it stopped"
                )
    return None


def stop_waves(containers: Sequence[Container], deps: Dependencies) -> list[list[str]]:
    """Containers to stop, in waves: dependents before what they depend on (ECS stops
    containers in reverse dependency order). Each wave can be stopped in parallel."""
    remaining = {c.name for c in containers}
    waves: list[list[str]] = []
    while remaining:
        # a container can stop once nothing still running depends on it
        depended_on = {d.container for n in remaining for d in deps.get(n, ()) if n != d.container}
        wave = sorted(n for n in remaining if n not in depended_on)
        if not wave:  # cycle (validation forbids it); stop the rest together
            wave = sorted(remaining)
        waves.append(wave)
        remaining -= set(wave)
    return waves


def essentials_running(containers: Sequence[Container]) -> bool:
    essentials = [c for c in containers if c.essential]
    return bool(essentials) and all(c.last_status == ContainerStatus.RUNNING for c in essentials)


def exited_essential(containers: Sequence[Container]) -> Container | None:
    """The first essential container that has stopped (by stop time)."""
    stopped = [c for c in containers if c.essential and c.last_status == ContainerStatus.STOPPED]
    if not stopped:
        return None
    never = datetime.max.replace(tzinfo=UTC)
    return min(stopped, key=lambda c: c.stopped_at or never)


def all_stopped(containers: Sequence[Container]) -> bool:
    return all(
        c.last_status == ContainerStatus.STOPPED
        or (c.last_status == ContainerStatus.PENDING and c.started_at is None)
        for c in containers
    )


def task_health(containers: Sequence[Container], checked: set[str]) -> HealthStatus:
    """ECS: UNHEALTHY if any essential container with a health check is unhealthy;
    HEALTHY if all of them are healthy; else UNKNOWN. ``checked`` = containers that
    have a health check."""
    relevant = [c for c in containers if c.essential and c.name in checked]
    if not relevant:
        return HealthStatus.UNKNOWN
    if any(c.health_status == HealthStatus.UNHEALTHY for c in relevant):
        return HealthStatus.UNHEALTHY
    if all(c.health_status == HealthStatus.HEALTHY for c in relevant):
        return HealthStatus.HEALTHY
    return HealthStatus.UNKNOWN
