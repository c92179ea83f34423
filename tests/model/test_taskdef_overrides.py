"""RunTask overrides: merging, shrink detection, unknown containers."""

from __future__ import annotations

import pytest

from hatoba.model.ecs_import import parse_task_definition
from hatoba.model.errors import FieldError, ValidationFailed
from hatoba.model.task import TaskOverride
from hatoba.model.taskdef import TaskDefinition
from hatoba.model.taskdef_overrides import (
    Resources,
    apply_overrides,
    reserved_resources,
    shrinks,
)


@pytest.fixture
def worker(example) -> TaskDefinition:
    return parse_task_definition(example("worker_secrets")).task_definition


def overrides(**data) -> TaskOverride:
    return TaskOverride.model_validate(data)


def test_without_overrides_containers_are_the_definition(worker):
    migrate, celery, heartbeat = apply_overrides(worker)
    assert migrate.argv == ["python", "-m", "billing.migrate"]
    assert celery.argv == ["celery", "-A", "billing", "worker", "--concurrency", "4"]
    assert heartbeat.argv == ["/bin/sh", "-c", "while true; do date > /tmp/alive; sleep 5; done"]
    assert celery.environment == {
        "CELERY_BROKER_URL": "redis://localhost:6379/0",
        "LOG_LEVEL": "info",
    }
    assert (celery.cpu, celery.memory, celery.memory_reservation) == (256, 512, 384)
    assert [s.name for s in celery.secrets] == ["DATABASE_URL", "STRIPE_KEY"]
    assert celery.definition.effective_stop_signal == "SIGQUIT"
    assert not migrate.essential


def test_overrides_merge_per_container(worker):
    o = overrides(
        containerOverrides=[
            {
                "name": "worker",
                "command": ["-A", "billing", "worker", "--concurrency", "16"],
                "environment": [
                    {"name": "LOG_LEVEL", "value": "debug"},
                    {"name": "X", "value": "1"},
                ],
                "cpu": 512,
                "memory": 768,
            },
            {"name": "heartbeat", "command": ["sleep", "infinity"]},
        ],
        cpu=1024,
        memory=2048,
    )
    migrate, celery, heartbeat = apply_overrides(worker, o)
    # command is replaced, entryPoint stays (as in ECS)
    assert celery.argv == ["celery", "-A", "billing", "worker", "--concurrency", "16"]
    assert celery.environment == {
        "CELERY_BROKER_URL": "redis://localhost:6379/0",
        "LOG_LEVEL": "debug",
        "X": "1",
    }
    assert (celery.cpu, celery.memory, celery.memory_reservation) == (512, 768, 384)
    # a list command replaces a shell-form one
    assert heartbeat.argv == ["sleep", "infinity"]
    assert migrate.argv == ["python", "-m", "billing.migrate"]
    assert reserved_resources(worker, o) == Resources(cpu=1024, memory=2048)
    assert shrinks(worker, o) == []


def test_reserved_resources_fall_back_to_container_sums():
    td = parse_task_definition(
        {
            "family": "f",
            "containerDefinitions": [
                {"name": "a", "command": ["x"], "cpu": 100, "memory": 64},
                {"name": "b", "command": ["x"], "cpu": 28, "memoryReservation": 32},
                {"name": "c", "command": ["x"]},
            ],
        }
    ).task_definition
    assert reserved_resources(td) == Resources(cpu=128, memory=96)
    o = overrides(containerOverrides=[{"name": "c", "memory": 100}])
    assert reserved_resources(td, o) == Resources(cpu=128, memory=196)


def test_unknown_container_override(worker):
    o = overrides(containerOverrides=[{"name": "worker"}, {"name": "wroker"}, {"name": "worker"}])
    with pytest.raises(ValidationFailed) as info:
        apply_overrides(worker, o)
    assert info.value.subject == "task overrides"
    assert [e.path for e in info.value.errors] == [
        "overrides.containerOverrides[1].name",
        "overrides.containerOverrides[2].name",
    ]
    assert "no container named 'wroker'" in info.value.errors[0].message
    with pytest.raises(ValidationFailed):
        shrinks(worker, o)


def test_shrinks_lists_every_reduction(worker):
    o = overrides(
        cpu=256,
        memory=512,
        containerOverrides=[
            {"name": "worker", "cpu": 128, "memory": 256, "memoryReservation": 128},
            {"name": "heartbeat", "memory": 64},
            {"name": "migrate", "memory": 512},
        ],
    )
    assert shrinks(worker, o) == [
        FieldError("overrides.cpu", "256 cpu units is less than the definition's 512 cpu units"),
        FieldError("overrides.memory", "512 MiB is less than the definition's 1024 MiB"),
        FieldError(
            "overrides.containerOverrides[0].cpu",
            "128 cpu units is less than the definition's 256 cpu units",
        ),
        FieldError(
            "overrides.containerOverrides[0].memoryReservation",
            "128 MiB is less than the definition's 384 MiB",
        ),
        FieldError(
            "overrides.containerOverrides[0].memory",
            "256 MiB is less than the definition's 512 MiB",
        ),
        FieldError(
            "overrides.containerOverrides[1].memory",
            "adds a hard limit of 64 MiB where the definition has none",
        ),
    ]


def test_no_overrides_no_shrinks(worker):
    assert shrinks(worker, None) == []
    assert shrinks(worker, TaskOverride()) == []


def test_merged_limits_are_rechecked(worker):
    o = overrides(
        memory=500,
        containerOverrides=[{"name": "worker", "memory": 300}, {"name": "migrate", "cpu": 400}],
    )
    with pytest.raises(ValidationFailed) as info:
        apply_overrides(worker, o)
    assert {e.path: e.message for e in info.value.errors} == {
        "overrides.containerOverrides[0].memoryReservation": "must be ≤ memory (300 MiB)",
        "overrides.memory": "containers need 572 MiB, more than the task's 500 MiB",
        "overrides.cpu": "containers reserve 656 cpu units, more than the task's 512",
    }
