from datetime import UTC, datetime, timedelta

from hatoba.agent.lifecycle import (
    Dependency,
    blocked_forever,
    essentials_running,
    exited_essential,
    startable,
    stop_waves,
    task_health,
)
from hatoba.model.task import Container, ContainerStatus, HealthStatus

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def running(
    name: str, essential: bool = True, health: HealthStatus = HealthStatus.UNKNOWN
) -> Container:
    return Container(
        name=name,
        essential=essential,
        last_status=ContainerStatus.RUNNING,
        started_at=T0,
        health_status=health,
    )


def stopped(name: str, code: int, essential: bool = True, at: int = 0) -> Container:
    return Container(
        name=name,
        essential=essential,
        last_status=ContainerStatus.STOPPED,
        started_at=T0,
        stopped_at=T0 + timedelta(seconds=at),
        exit_code=code,
    )


def pending(name: str, essential: bool = True) -> Container:
    return Container(name=name, essential=essential)


DEPS = {
    "app": [Dependency("migrate", "SUCCESS"), Dependency("db", "HEALTHY")],
    "sidecar": [Dependency("app", "START")],
}


def test_nothing_with_unmet_dependencies_starts() -> None:
    cs = [pending("db"), pending("migrate", essential=False), pending("app"), pending("sidecar")]
    assert startable(cs, DEPS) == ["db", "migrate"]


def test_app_starts_after_success_and_healthy() -> None:
    cs = [
        running("db", health=HealthStatus.HEALTHY),
        stopped("migrate", 0, essential=False),
        pending("app"),
        pending("sidecar"),
    ]
    assert startable(cs, DEPS) == ["app"]
    cs[2] = running("app")
    assert startable(cs, DEPS) == ["sidecar"]


def test_failed_dependency_blocks_forever() -> None:
    cs = [running("db"), stopped("migrate", 2, essential=False), pending("app"), pending("sidecar")]
    reason = blocked_forever(cs, DEPS)
    assert reason is not None and "'migrate' succeeding" in reason and "exited with 2" in reason
    assert blocked_forever([running("db"), pending("app"), pending("migrate")], DEPS) is None


def test_stop_waves_reverse_dependency_order() -> None:
    cs = [running("db"), running("migrate"), running("app"), running("sidecar")]
    assert stop_waves(cs, DEPS) == [["sidecar"], ["app"], ["db", "migrate"]]


def test_essentials_and_first_exited() -> None:
    assert essentials_running([running("a"), pending("b", essential=False)])
    assert not essentials_running([running("a"), pending("b")])
    first = exited_essential([stopped("a", 0, at=5), stopped("b", 1, at=2), running("c")])
    assert first is not None and first.name == "b"
    assert exited_essential([stopped("x", 0, essential=False)]) is None


def test_task_health() -> None:
    h, u = HealthStatus.HEALTHY, HealthStatus.UNHEALTHY
    assert task_health([running("a", health=h), running("b")], {"a"}) == h
    assert task_health([running("a", health=h), running("b", health=u)], {"a", "b"}) == u
    assert task_health([running("a")], {"a"}) == HealthStatus.UNKNOWN
    assert task_health([running("a", essential=False, health=u)], {"a"}) == HealthStatus.UNKNOWN
