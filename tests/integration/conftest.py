"""A real control plane in-process: real SQLite, real process driver, real processes."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hatoba.api.services import ApiServices
from hatoba.config import Settings
from hatoba.controllers.tasks import RunTaskRequest
from hatoba.logs.reader import task_log_lines
from hatoba.model.task import LastStatus, Task
from hatoba.server import control_plane
from tests.conftest import _admin, pg_url


async def _live_pids(services: ApiServices) -> list[int]:
    live = [s for s in LastStatus if s != LastStatus.STOPPED]
    tasks = await services.store.list_tasks(last_statuses=live)
    return [c.pid for t in tasks for c in t.containers if c.pid]


def _kill_groups(pids: list[int]) -> None:
    """Tasks outlive their control plane by design; a test's must not outlive the test."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)


@pytest.fixture
async def cp(tmp_path: Path) -> AsyncIterator[ApiServices]:
    async with control_plane(Settings(home=tmp_path / "home")) as services:
        yield services
        pids = await _live_pids(services)
    _kill_groups(pids)


@pytest.fixture
async def cp_pg(tmp_path: Path, pg_database: str) -> AsyncIterator[ApiServices]:
    """The same control plane on PostgreSQL (a fresh schema per test)."""
    await _admin("DROP SCHEMA public CASCADE; CREATE SCHEMA public", database=pg_database)
    settings = Settings(home=tmp_path / "home", database_url=pg_url(pg_database))
    async with control_plane(settings) as services:
        yield services
        pids = await _live_pids(services)
    _kill_groups(pids)


def container(name: str, command: list[str] | str, **extra: Any) -> dict[str, Any]:
    c: dict[str, Any] = {"name": name, "command": command, "essential": True}
    if isinstance(command, str):
        c["shell"] = True
    c.update(extra)
    return c


async def run_to_end(
    cp: ApiServices, family: str, containers: list[dict[str, Any]], timeout: float = 20, **req: Any
) -> Task:
    await cp.task_definitions.register({"family": family, "containerDefinitions": containers})
    result = await cp.tasks.run(RunTaskRequest(task_definition=family, **req))
    assert not result.failures, result.failures
    return await cp.tasks.wait_for(result.tasks[0].task_id, LastStatus.STOPPED, timeout)


async def logs_of(cp: ApiServices, task: Task) -> list[tuple[str, str, bytes]]:
    files = [(c.name, cp.layout.container_log(task.task_id, c.name)) for c in task.containers]

    async def finished() -> bool:
        return True

    out = []
    async for batch in task_log_lines(files, follow=False, finished=finished):
        out.extend((line.container, line.record.stream_name, line.record.data) for line in batch)
    return out
