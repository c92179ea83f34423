"""Task scale-in protection in the service planner: scale-in never stops a protected task,
stops unprotected ones first, and wakes when the earliest protection blocking it expires."""

from __future__ import annotations

from hatoba.model.service import RolloutState, ServiceStatus
from hatoba.model.task import Task
from tests.controllers.test_service_plan import HEALTHY, at, dep, run, stopped_ids, svc, task


def protected(t: Task, until: float) -> Task:
    return t.model_copy(update={"protected_until": at(until)})


def steady(desired: int, status: ServiceStatus = ServiceStatus.ACTIVE):
    return svc(dep(state=RolloutState.COMPLETED), desired=desired, completed="web:2", status=status)


def test_scale_in_skips_protected_tasks_and_stops_the_rest() -> None:
    tasks = [
        protected(task("busy-new", started=-10, health=HEALTHY), 600),
        task("idle-old", started=-300, health=HEALTHY),
        task("idle-new", started=-5, health=HEALTHY),
        protected(task("busy-old", started=-400, health=HEALTHY), 300),
    ]
    p = run(steady(2), tasks)
    # without protection the newest two would go (busy-new first); protected ones stay
    assert sorted(stopped_ids(p)) == ["idle-new", "idle-old"]
    assert p.launches == []
    assert p.wake_at is None  # nothing waits on a protection


def test_all_extras_protected_keeps_the_count_above_desired_until_expiry() -> None:
    tasks = [
        protected(task("a", started=-100), 900),
        protected(task("b", started=-50), 300),
        task("c", started=-10),
    ]
    p = run(steady(1), tasks)
    assert stopped_ids(p) == ["c"]  # the only unprotected one
    assert p.wake_at == at(300)  # the earliest protection among those kept
    later = run(steady(1), tasks[:2], now=300)  # b's protection has just expired
    assert stopped_ids(later) == ["b"]
    assert later.wake_at is None


def test_expired_protection_is_ignored() -> None:
    tasks = [protected(task("a", started=-100), -1), task("b", started=-10)]
    p = run(steady(1), tasks)
    assert stopped_ids(p) == ["b"]  # newest first, as without protection
    p = run(steady(0), tasks)
    assert sorted(stopped_ids(p)) == ["a", "b"]


def test_scale_to_zero_spares_protected_tasks() -> None:
    tasks = [protected(task("a"), 120), task("b")]
    p = run(steady(0), tasks, now=60)
    assert stopped_ids(p) == ["b"]
    assert p.wake_at == at(120)


def test_deleted_service_stops_protected_tasks_too() -> None:
    tasks = [protected(task("a"), 120), task("b")]
    p = run(steady(0, ServiceStatus.DRAINING), tasks)
    assert sorted(stopped_ids(p)) == ["a", "b"]


def test_protection_does_not_block_launches_or_count_as_extra() -> None:
    tasks = [protected(task("a"), 120)]
    p = run(steady(3), tasks)
    assert sum(launch.count for launch in p.launches) == 2
    assert p.stops == []
    assert p.wake_at is None
