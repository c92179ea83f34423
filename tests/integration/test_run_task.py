"""RunTask end to end on the embedded default: real processes, real SQLite."""

from __future__ import annotations

import asyncio

import pytest

from hatoba.api.services import ApiServices
from hatoba.controllers.tasks import RunTaskRequest
from hatoba.model.errors import ValidationFailed
from hatoba.model.task import (
    ContainerStatus,
    HealthStatus,
    LastStatus,
    StopCode,
    TaskOverride,
)
from tests.integration.conftest import container, logs_of, run_to_end


async def test_task_runs_logs_and_passes_exit_code(cp: ApiServices) -> None:
    task = await run_to_end(cp, "hello", [container("app", "echo out; echo err >&2; exit 3")])
    assert task.last_status == LastStatus.STOPPED
    assert task.stop_code == StopCode.ESSENTIAL_CONTAINER_EXITED
    assert task.exit_code == 3
    assert task.container("app").exit_code == 3
    assert task.started_at and task.stopped_at and task.created_at <= task.started_at
    assert await logs_of(cp, task) == [("app", "stdout", b"out"), ("app", "stderr", b"err")]


async def test_missing_executable_fails_to_start(cp: ApiServices) -> None:
    task = await run_to_end(cp, "broken", [container("app", ["no-such-binary-xyz", "x"])])
    assert task.stop_code == StopCode.TASK_FAILED_TO_START
    assert task.stopped_reason is not None
    assert 'exec: "no-such-binary-xyz"' in task.stopped_reason
    assert task.stopped_reason.startswith("CannotStartContainerError")
    assert task.exit_code is None


async def test_user_stop_sends_sigterm_to_the_group(cp: ApiServices) -> None:
    await cp.task_definitions.register(
        {
            "family": "sleeper",
            "containerDefinitions": [container("app", "sleep 100 & sleep 100; wait")],
        }
    )
    res = await cp.tasks.run(RunTaskRequest(task_definition="sleeper"))
    task_id = res.tasks[0].task_id
    running = await cp.tasks.wait_for(task_id, LastStatus.RUNNING, 10)
    assert running.last_status == LastStatus.RUNNING
    await cp.tasks.stop(task_id, "enough")
    task = await cp.tasks.wait_for(task_id, LastStatus.STOPPED, 10)
    assert task.stop_code == StopCode.USER_INITIATED
    assert task.stopped_reason == "enough"
    assert task.container("app").exit_code == 143


async def test_stop_timeout_escalates_to_sigkill(cp: ApiServices) -> None:
    await cp.task_definitions.register(
        {
            "family": "stubborn",
            "containerDefinitions": [
                container("app", "trap '' TERM; while true; do sleep 0.1; done", stopTimeout=1)
            ],
        }
    )
    res = await cp.tasks.run(RunTaskRequest(task_definition="stubborn"))
    task_id = res.tasks[0].task_id
    await cp.tasks.wait_for(task_id, LastStatus.RUNNING, 10)
    await cp.tasks.stop(task_id)
    task = await cp.tasks.wait_for(task_id, LastStatus.STOPPED, 10)
    assert task.container("app").exit_code == 137


async def test_depends_on_success_and_healthy(cp: ApiServices, tmp_path) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "migrated"
    task = await run_to_end(
        cp,
        "ordered",
        [
            container(
                "db", "sleep 30", healthCheck={"command": ["CMD-SHELL", "true"], "interval": 5}
            ),
            container("migrate", f"echo migrating; touch {marker}", essential=False),
            container(
                "app",
                f"test -f {marker} && echo app-saw-migration",
                dependsOn=[
                    {"containerName": "migrate", "condition": "SUCCESS"},
                    {"containerName": "db", "condition": "HEALTHY"},
                ],
            ),
        ],
    )
    assert task.container("migrate").exit_code == 0
    assert task.container("app").exit_code == 0
    assert task.exit_container == "app"
    assert task.container("db").health_status == HealthStatus.HEALTHY
    assert task.container("db").exit_code == 143  # stopped because essential app exited
    assert ("app", "stdout", b"app-saw-migration") in await logs_of(cp, task)


async def test_failed_dependency_stops_task(cp: ApiServices) -> None:
    task = await run_to_end(
        cp,
        "failinit",
        [
            container("init", "exit 4", essential=False),
            container(
                "app", "echo never", dependsOn=[{"containerName": "init", "condition": "SUCCESS"}]
            ),
        ],
    )
    assert task.stop_code == StopCode.TASK_FAILED_TO_START
    assert "exited with 4" in (task.stopped_reason or "")
    assert task.container("app").started_at is None


async def test_max_run_time_times_out(cp: ApiServices) -> None:
    task = await run_to_end(cp, "slow", [container("app", "sleep 30")], timeout_seconds=0.5)
    assert task.stop_code == StopCode.TASK_TIMED_OUT
    assert task.container("app").exit_code == 143


async def test_missing_secret_fails_clearly(cp: ApiServices) -> None:
    task = await run_to_end(
        cp,
        "secretive",
        [
            container(
                "app", "true", secrets=[{"name": "DB_PASSWORD", "valueFrom": "/prod/db/password"}]
            )
        ],
    )
    assert task.stop_code == StopCode.TASK_FAILED_TO_START
    assert "unable to retrieve secret" in (task.stopped_reason or "")
    assert "/prod/db/password (for DB_PASSWORD) not found" in (task.stopped_reason or "")


async def test_env_overrides_and_env_files(cp: ApiServices, tmp_path) -> None:  # type: ignore[no-untyped-def]
    env_file = tmp_path / "app.env"
    env_file.write_text("FROM_FILE=file\nBOTH=file\n")
    task = await run_to_end(
        cp,
        "envy",
        [
            container(
                "app",
                'echo "$FROM_FILE $BOTH $OVERRIDDEN $HATOBA_CONTAINER_NAME"',
                environment=[
                    {"name": "BOTH", "value": "env"},
                    {"name": "OVERRIDDEN", "value": "no"},
                ],
                environmentFiles=[{"value": str(env_file), "type": "file"}],
            )
        ],
        overrides=TaskOverride.model_validate(
            {
                "containerOverrides": [
                    {"name": "app", "environment": [{"name": "OVERRIDDEN", "value": "yes"}]}
                ]
            }
        ),
    )
    assert await logs_of(cp, task) == [("app", "stdout", b"file env yes app")]


async def test_command_override(cp: ApiServices) -> None:
    task = await run_to_end(
        cp,
        "cmd",
        [container("app", ["echo", "default"])],
        overrides=TaskOverride.model_validate(
            {"containerOverrides": [{"name": "app", "command": ["echo", "overridden"]}]}
        ),
    )
    assert await logs_of(cp, task) == [("app", "stdout", b"overridden")]


async def test_shrinking_override_needs_allow_shrink(cp: ApiServices) -> None:
    await cp.task_definitions.register(
        {
            "family": "big",
            "cpu": "512",
            "memory": "256",
            "containerDefinitions": [container("app", "true")],
        }
    )
    with pytest.raises(ValidationFailed) as err:
        await cp.tasks.run(
            RunTaskRequest(task_definition="big", overrides=TaskOverride(memory=128))
        )
    assert any(e.path.endswith("memory") and "allowShrink" in e.message for e in err.value.errors)
    res = await cp.tasks.run(
        RunTaskRequest(task_definition="big", overrides=TaskOverride(memory=128), allow_shrink=True)
    )
    assert res.tasks[0].memory == 128


async def test_placement_failure_is_structured(cp: ApiServices) -> None:
    await cp.task_definitions.register(
        {
            "family": "huge",
            "memory": str(10_000_000),
            "containerDefinitions": [container("app", "true")],
        }
    )
    res = await cp.tasks.run(RunTaskRequest(task_definition="huge"))
    assert res.tasks == []
    assert res.failures[0].reason == "RESOURCE:MEMORY"
    assert res.failures[0].arn == "huge:1"


async def test_many_concurrent_tasks(cp: ApiServices) -> None:
    await cp.task_definitions.register(
        {"family": "par", "containerDefinitions": [container("app", 'echo "$HATOBA_TASK_ID"')]}
    )
    res = await cp.tasks.run(RunTaskRequest(task_definition="par", count=10))
    tasks = await asyncio.gather(
        *(cp.tasks.wait_for(t.task_id, LastStatus.STOPPED, 20) for t in res.tasks)
    )
    for t in tasks:
        assert t.exit_code == 0
        assert t.container("app").last_status == ContainerStatus.STOPPED
        assert await logs_of(cp, t) == [("app", "stdout", t.task_id.encode())]
