"""Retention by size: oldest stopped tasks' logs go first, a running task's never."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from hatoba.logs.retention import DirUsage, choose_evictions, enforce_log_budget
from hatoba.model.layout import DataLayout
from hatoba.model.task import LastStatus, Task
from hatoba.store.factory import open_store

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def test_oldest_stopped_first_orphans_before_them_running_never() -> None:
    usage = [
        DirUsage("running", 500, 1.0),
        DirUsage("old", 100, 2.0),
        DirUsage("new", 100, 3.0),
        DirUsage("orphan", 50, 9.0),
    ]
    stopped = {"old": T0, "new": T0 + timedelta(hours=1)}
    assert choose_evictions(usage, stopped, {"running"}, 10_000) == []
    assert choose_evictions(usage, stopped, {"running"}, 700) == ["orphan"]
    assert choose_evictions(usage, stopped, {"running"}, 650) == ["orphan", "old"]
    # over budget by the running task alone: everything else goes, the running one stays
    assert choose_evictions(usage, stopped, {"running"}, 10) == ["orphan", "old", "new"]
    # logs a forwarder still owes go last
    assert choose_evictions(usage, stopped, {"running"}, 650, owed={"old"}) == ["orphan", "new"]


async def test_budget_deletes_stopped_task_dirs_on_disk(tmp_path: Path) -> None:
    layout = DataLayout(tmp_path / "home")
    store = await open_store(None, layout)
    try:
        for i, status in enumerate([LastStatus.STOPPED, LastStatus.STOPPED, LastStatus.RUNNING]):
            task = Task(
                task_id=f"t{i}",
                task_definition_arn="web:1",
                node_id="n1",
                created_at=T0,
                last_status=status,
                stopped_at=T0 + timedelta(minutes=i) if status == LastStatus.STOPPED else None,
            )
            await store.create_task(task)
            log = layout.container_log(task.task_id, "app")
            log.parent.mkdir(parents=True)
            log.write_bytes(b"x" * 300_000)
        assert await enforce_log_budget(store, layout, "n1", 10**9) == []
        assert await enforce_log_budget(store, layout, "n1", 700_000) == ["t0"]
        assert not layout.task_dir("t0").exists()
        assert await enforce_log_budget(store, layout, "n1", 1) == ["t1"]
        assert layout.container_log("t2", "app").exists()
        assert await store.get_task("t0") is not None  # the task stays describable
    finally:
        await store.close()
