from hatoba.agent.health import HealthState, health_argv
from hatoba.model.task import HealthStatus


def test_health_argv_forms() -> None:
    assert health_argv(["CMD-SHELL", "curl -f localhost || exit 1"]) == [
        "/bin/sh",
        "-c",
        "curl -f localhost || exit 1",
    ]
    assert health_argv(["CMD", "true", "x"]) == ["true", "x"]


def test_retries_consecutive_failures_make_unhealthy() -> None:
    s = HealthState()
    assert not s.record(False, in_start_period=False, retries=3)
    assert not s.record(False, in_start_period=False, retries=3)
    assert s.record(False, in_start_period=False, retries=3)
    assert s.status == HealthStatus.UNHEALTHY
    assert s.record(True, in_start_period=False, retries=3)
    assert s.status == HealthStatus.HEALTHY and s.failures == 0


def test_failures_in_start_period_do_not_count() -> None:
    s = HealthState()
    for _ in range(5):
        s.record(False, in_start_period=True, retries=1)
    assert s.status == HealthStatus.UNKNOWN and s.failures == 0
    assert s.record(True, in_start_period=True, retries=1)
    assert s.status == HealthStatus.HEALTHY
