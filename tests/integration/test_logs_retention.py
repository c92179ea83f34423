"""Retention by size in the agent's housekeeping: stopped tasks' logs go, oldest first;
a running task's stay; the tasks stay describable."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hatoba.config import Settings
from hatoba.controllers.tasks import RunTaskRequest
from hatoba.model.task import LastStatus
from hatoba.server import control_plane
from tests.integration.conftest import container, run_to_end


async def test_housekeeping_keeps_the_log_store_under_its_budget(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", log_max_bytes=300_000)
    async with control_plane(settings, autoscaling=False) as cp:
        big = "python3 -c \"print('x' * 200_000)\""
        old = await run_to_end(cp, "writer", [container("app", big)])
        new = await run_to_end(cp, "writer", [container("app", big)])
        await cp.task_definitions.register(
            {"family": "live", "containerDefinitions": [container("app", f"{big}; sleep 60")]}
        )
        live = (await cp.tasks.run(RunTaskRequest(task_definition="live"))).tasks[0]
        await cp.tasks.wait_for(live.task_id, LastStatus.RUNNING, 10)
        layout = cp.layout
        log = layout.container_log(live.task_id, "app")
        for _ in range(500):
            if log.exists() and log.stat().st_size >= 200_000:
                break
            await asyncio.sleep(0.02)
        await cp.agent._housekeeping()  # what the agent runs every few seconds
        assert not layout.task_dir(old.task_id).exists()
        assert not layout.task_dir(new.task_id).exists()  # still over: the next oldest too
        assert log.exists()  # never a running task's
        assert (await cp.tasks.resolve(old.task_id)).last_status == LastStatus.STOPPED
        await cp.tasks.stop(live.task_id, "done")
        await cp.tasks.wait_for(live.task_id, LastStatus.STOPPED, 10)
