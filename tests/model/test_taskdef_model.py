"""The models themselves: argv, stop defaults, health check argv, store round trip."""

from __future__ import annotations

import typing

from hatoba.model.ecs_import import parse_task_definition
from hatoba.model.taskdef import (
    ContainerDefinition,
    HealthCheck,
    TaskDefinition,
    TaskDefinitionStatus,
    Ulimit,
)


def test_argv_combines_entry_point_and_command():
    c = ContainerDefinition(name="a", entry_point=["python", "-m"], command=["app", "--x"])
    assert c.argv() == ["python", "-m", "app", "--x"]
    assert c.argv(["other"]) == ["python", "-m", "other"]
    assert ContainerDefinition(name="a", entry_point=["top"]).argv() == ["top"]


def test_shell_form():
    c = ContainerDefinition.model_validate({"name": "a", "command": "echo $HOME", "shell": True})
    assert c.argv() == ["/bin/sh", "-c", "echo $HOME"]


def test_stop_defaults():
    c = ContainerDefinition(name="a", command=["x"])
    assert (c.effective_stop_timeout, c.effective_stop_signal) == (30.0, "SIGTERM")
    c = ContainerDefinition.model_validate(
        {"name": "a", "command": ["x"], "stopTimeout": 600, "stopSignal": "SIGINT"}
    )
    assert (c.effective_stop_timeout, c.effective_stop_signal) == (600.0, "SIGINT")


def test_health_check_argv_and_defaults():
    shell = HealthCheck(command=["CMD-SHELL", "curl -f localhost || exit 1"])
    assert shell.argv() == ["/bin/sh", "-c", "curl -f localhost || exit 1"]
    assert (shell.interval, shell.timeout, shell.retries, shell.start_period) == (30, 5, 3, 0)
    assert HealthCheck(command=["CMD", "pg_isready", "-q"]).argv() == ["pg_isready", "-q"]


def test_ulimit_names_are_ecs_names():
    names = typing.get_args(Ulimit.model_fields["name"].annotation)
    assert set(names) == {
        "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
        "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack",
    }  # fmt: skip


def test_arn_and_store_round_trip(example):
    td = parse_task_definition(example("nginx_firelens")).task_definition
    stored = td.model_copy(update={"revision": 2, "status": TaskDefinitionStatus.INACTIVE})
    assert stored.arn == "web-nginx:2"
    again = TaskDefinition.model_validate_json(stored.model_dump_json())
    assert again == stored
    assert again.container("nginx").ignored["dockerLabels"] == {"team": "web"}
    # the API's wire() form validates back too
    assert TaskDefinition.model_validate(stored.wire()) == stored


def test_model_validate_keeps_unused_ecs_fields_on_any_path():
    td = TaskDefinition.model_validate(
        {
            "family": "f",
            "networkMode": "host",
            "containerDefinitions": [{"name": "a", "command": ["x"], "privileged": True}],
        }
    )
    assert td.ignored == {"networkMode": "host"}
    assert td.container_definitions[0].ignored == {"privileged": True}
