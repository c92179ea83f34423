"""Cross-field rules: each one, with the exact JSON path it reports."""

from __future__ import annotations

from typing import Any

import pytest

from hatoba.model.ecs_import import parse_task_definition
from hatoba.model.errors import FieldError, ValidationFailed


def container(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "command": ["run", name], **fields}


def task(*containers: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"family": "app", "containerDefinitions": list(containers), **fields}


def errors_of(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ValidationFailed) as info:
        parse_task_definition(data)
    return {e.path: e.message for e in info.value.errors}


def test_worker_example_is_valid(example):
    parsed = parse_task_definition(example("worker_secrets"))
    assert parsed.warnings == []


def test_container_names_are_unique():
    errors = errors_of(task(container("a"), container("b"), container("a")))
    assert errors == {
        "containerDefinitions[2].name": (
            "duplicate container name 'a' (also containerDefinitions[0])"
        )
    }


def test_at_least_one_essential_container():
    errors = errors_of(task(container("a", essential=False), container("b", essential=False)))
    assert errors == {"containerDefinitions": "at least one container must be essential"}


def test_depends_on_unknown_container():
    data = task(container("a", dependsOn=[{"containerName": "ghost", "condition": "START"}]))
    assert errors_of(data) == {
        "containerDefinitions[0].dependsOn[0].containerName": (
            "no container named 'ghost' in this task definition"
        )
    }


def test_depends_on_itself():
    data = task(
        container("a"), container("b", dependsOn=[{"containerName": "b", "condition": "START"}])
    )
    assert errors_of(data) == {
        "containerDefinitions[1].dependsOn[0].containerName": "a container cannot depend on itself"
    }


def test_dependency_cycle_reported_once_from_its_first_container():
    def dep(name: str) -> list[dict[str, str]]:
        return [{"containerName": name, "condition": "START"}]

    data = task(
        container("web"),
        container("a", dependsOn=dep("c")),
        container("b", dependsOn=dep("a")),
        container("c", dependsOn=dep("b")),
    )
    assert errors_of(data) == {
        "containerDefinitions[1].dependsOn": "dependency cycle: a → c → b → a"
    }


def test_two_container_cycle():
    data = task(
        container("a", dependsOn=[{"containerName": "b", "condition": "COMPLETE"}]),
        container("b", dependsOn=[{"containerName": "a", "condition": "SUCCESS"}]),
    )
    assert errors_of(data) == {"containerDefinitions[0].dependsOn": "dependency cycle: a → b → a"}


def test_diamond_is_not_a_cycle():
    def dep(*names: str) -> list[dict[str, str]]:
        return [{"containerName": n, "condition": "START"} for n in names]

    data = task(container("top", dependsOn=dep("l", "r")), container("l", dependsOn=dep("base")),
                container("r", dependsOn=dep("base")), container("base"))  # fmt: skip
    parse_task_definition(data)


def test_healthy_needs_a_health_check_on_the_target():
    data = task(
        container("db"),
        container("app", dependsOn=[{"containerName": "db", "condition": "HEALTHY"}]),
    )
    assert errors_of(data) == {
        "containerDefinitions[1].dependsOn[0].condition": (
            "HEALTHY needs container 'db' to have a healthCheck"
        )
    }
    data["containerDefinitions"][0]["healthCheck"] = {"command": ["CMD", "pg_isready"]}
    parse_task_definition(data)


def test_memory_reservation_at_most_memory():
    errors = errors_of(task(container("a", memory=256, memoryReservation=512)))
    assert list(errors) == ["containerDefinitions[0].memoryReservation"]
    assert errors["containerDefinitions[0].memoryReservation"].startswith(
        "must be ≤ memory (256 MiB)"
    )


def test_container_memory_sum_at_most_task_memory():
    data = task(
        container("a", memory=300),
        container("b", memoryReservation=300),  # counts its reservation when no hard limit
        container("c"),  # counts nothing
        memory="512",
    )
    assert errors_of(data) == {
        "memory": "containers need 600 MiB (sum of memory, else memoryReservation), "
        "more than the task's 512 MiB"
    }


def test_container_cpu_sum_at_most_task_cpu():
    data = task(container("a", cpu=768), container("b", cpu=512), cpu="1 vCPU")
    assert errors_of(data) == {
        "cpu": "containers reserve 1280 cpu units, more than the task's 1024"
    }


def test_something_to_run():
    errors = errors_of(task({"name": "a", "image": "nginx"}))
    assert errors == {
        "containerDefinitions[0].command": (
            "nothing to run: set command or entryPoint (the process driver does not run images)"
        )
    }


def test_entry_point_alone_is_enough():
    parse_task_definition(task({"name": "a", "entryPoint": ["nginx", "-g", "daemon off;"]}))


def test_string_command_needs_shell():
    errors = errors_of(task({"name": "a", "command": "python app.py"}))
    message = errors["containerDefinitions[0].command"]
    assert '"shell": true' in message
    assert '["python", "app.py"]' in message


def test_shell_needs_a_string_command():
    errors = errors_of(task(container("a", shell=True)))
    assert errors == {
        "containerDefinitions[0].command": 'with "shell": true, command must be a single string'
    }


def test_environment_names_unique():
    env = [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}, {"name": "A", "value": "3"}]
    assert errors_of(task(container("a", environment=env))) == {
        "containerDefinitions[0].environment[2].name": (
            "duplicate variable 'A' (also environment[0])"
        )
    }


def test_secret_names_unique():
    secrets = [{"name": "S", "valueFrom": "/x"}, {"name": "S", "valueFrom": "/y"}]
    assert errors_of(task(container("a", secrets=secrets))) == {
        "containerDefinitions[0].secrets[1].name": "duplicate secret 'S' (also secrets[0])"
    }


def test_secret_colliding_with_environment_is_a_warning():
    data = task(
        container(
            "a",
            environment=[{"name": "TOKEN", "value": "dev"}],
            secrets=[{"name": "TOKEN", "valueFrom": "/app/token"}],
        )
    )
    parsed = parse_task_definition(data)
    assert parsed.warnings == [
        FieldError(
            "containerDefinitions[0].secrets[0].name",
            "'TOKEN' is also set in environment[0]; the secret's value is used",
        )
    ]


def test_ulimit_soft_at_most_hard_and_unique():
    ulimits = [
        {"name": "nofile", "softLimit": 2048, "hardLimit": 1024},
        {"name": "nofile", "softLimit": 1, "hardLimit": 1},
        {"name": "core", "softLimit": -1, "hardLimit": -1},  # unlimited
        {"name": "stack", "softLimit": 8192, "hardLimit": -1},
    ]
    assert errors_of(task(container("a", ulimits=ulimits))) == {
        "containerDefinitions[0].ulimits[0].softLimit": "must be ≤ hardLimit (1024)",
        "containerDefinitions[0].ulimits[1].name": "duplicate ulimit 'nofile' (also ulimits[0])",
    }


def test_port_mapping_needs_one_container_port_form():
    ports = [{"hostPort": 80}, {"containerPortRange": "9000-9010"}]
    assert errors_of(task(container("a", portMappings=ports))) == {
        "containerDefinitions[0].portMappings[0].containerPort": (
            "set exactly one of containerPort or containerPortRange"
        )
    }


def test_bad_port_range():
    ports = [{"containerPortRange": "9010-9000"}]
    errors = errors_of(task(container("a", portMappings=ports)))
    assert list(errors) == ["containerDefinitions[0].portMappings[0].containerPortRange"]


def test_host_port_claimed_twice_in_one_task():
    data = task(
        container("a", portMappings=[{"containerPort": 80, "hostPort": 8080}]),
        container("b", portMappings=[{"containerPort": 81, "hostPort": 8080},
                                     {"containerPort": 82, "hostPort": 8080, "protocol": "udp"}]),
    )  # fmt: skip
    assert errors_of(data) == {
        "containerDefinitions[1].portMappings[0].hostPort": (
            "host port 8080/tcp also used by containerDefinitions[0].portMappings[0].hostPort"
        )
    }


def test_s3_environment_files_are_modelled_with_a_warning():
    data = task(container("a", environmentFiles=[{"value": "arn:aws:s3:::b/x.env", "type": "s3"}]))
    (warning,) = parse_task_definition(data).warnings
    assert warning.path == "containerDefinitions[0].environmentFiles[0].type"


def test_health_check_command_forms():
    bad = [["curl", "x"], ["CMD-SHELL"], ["CMD-SHELL", "a", "b"], ["CMD"], []]
    for command in bad:
        errors = errors_of(task(container("a", healthCheck={"command": command})))
        assert list(errors) == ["containerDefinitions[0].healthCheck.command"], command


def test_all_cross_field_errors_are_collected():
    data = task(
        container("a", essential=False, memory=10, memoryReservation=20),
        {"name": "a", "essential": False, "command": "x"},
        memory=8,
    )
    assert set(errors_of(data)) == {
        "containerDefinitions[0].memoryReservation",
        "containerDefinitions[1].command",
        "containerDefinitions[1].name",
        "containerDefinitions",
        "memory",
    }
