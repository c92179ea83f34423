"""The embedded control plane on PostgreSQL instead of SQLite: same code path, same results."""

from __future__ import annotations

from hatoba.api.services import ApiServices
from hatoba.controllers.tasks import RunTaskRequest
from hatoba.model.task import LastStatus, StopCode
from tests.integration.conftest import container, logs_of, run_to_end


async def test_run_task_on_postgres(cp_pg: ApiServices) -> None:
    task = await run_to_end(cp_pg, "hello", [container("app", "echo on-pg; exit 5")])
    assert task.exit_code == 5
    assert task.stop_code == StopCode.ESSENTIAL_CONTAINER_EXITED
    assert await logs_of(cp_pg, task) == [("app", "stdout", b"on-pg")]
    again = await cp_pg.task_definitions.register(
        {"family": "hello", "containerDefinitions": [container("app", "true")]}
    )
    assert again.task_definition.revision == 2


async def test_stop_on_postgres(cp_pg: ApiServices) -> None:
    await cp_pg.task_definitions.register(
        {"family": "sleeper", "containerDefinitions": [container("app", ["sleep", "60"])]}
    )
    res = await cp_pg.tasks.run(RunTaskRequest(task_definition="sleeper", count=3))
    for t in res.tasks:
        await cp_pg.tasks.wait_for(t.task_id, LastStatus.RUNNING, 10)
        await cp_pg.tasks.stop(t.task_id)
    for t in res.tasks:
        done = await cp_pg.tasks.wait_for(t.task_id, LastStatus.STOPPED, 10)
        assert done.stop_code == StopCode.USER_INITIATED
        assert done.container("app").exit_code == 143
