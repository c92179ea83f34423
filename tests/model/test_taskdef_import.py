"""parse_task_definition / export_task_definition on real ECS JSON."""

from __future__ import annotations

from typing import Any

import pytest

from hatoba.model.ecs_fields import (
    ASSIGNED_FIELDS,
    CONTAINER_FIELDS_NOT_USED,
    TASK_FIELDS_NOT_USED,
)
from hatoba.model.ecs_import import export_task_definition, parse_task_definition
from hatoba.model.errors import FieldError, ValidationFailed
from hatoba.model.log_outputs import LOCAL_ONLY
from hatoba.model.taskdef import TaskDefinition

NOT_USED = "not used by hatoba (kept, exported back)"


def errors_of(data: dict[str, Any]) -> list[FieldError]:
    with pytest.raises(ValidationFailed) as info:
        parse_task_definition(data)
    assert info.value.subject == "task definition"
    return info.value.errors


def paths(errors: list[FieldError]) -> set[str]:
    return {e.path for e in errors}


def minimal(**container: Any) -> dict[str, Any]:
    return {"family": "app", "containerDefinitions": [{"name": "app", **container}]}


@pytest.mark.parametrize("name", ["nginx_firelens", "worker_secrets"])
def test_round_trip_is_exact_up_to_normalized_cpu_memory(example, name):
    data = example(name)
    td = parse_task_definition(data).task_definition
    exported = export_task_definition(td)
    data["cpu"] = str(td.cpu)
    data["memory"] = str(td.memory)
    assert exported == data


def test_round_trip_survives_a_store_style_dump_and_reload(example):
    data = example("nginx_firelens")
    td = parse_task_definition(data).task_definition
    stored = td.model_copy(update={"revision": 3}).model_dump(mode="json", exclude_unset=True)
    reloaded = TaskDefinition.model_validate(stored)
    assert reloaded.revision == 3
    assert export_task_definition(reloaded) == export_task_definition(td)


def test_export_of_a_fully_dumped_model_parses_back_to_the_same(example):
    td = parse_task_definition(example("worker_secrets")).task_definition
    reloaded = TaskDefinition.model_validate_json(td.model_dump_json())
    exported = export_task_definition(reloaded)
    assert "image" not in exported["containerDefinitions"][0]  # no nulls
    assert parse_task_definition(exported).task_definition == td


def test_nginx_firelens_warns_for_every_unused_field_and_the_images(example):
    parsed = parse_task_definition(example("nginx_firelens"))
    warnings = {str(w) for w in parsed.warnings}
    expected = {
        f"{path}: {NOT_USED}"
        for path in [
            "networkMode",
            "requiresCompatibilities",
            "executionRoleArn",
            "taskRoleArn",
            "runtimePlatform",
            "volumes",
            "containerDefinitions[0].firelensConfiguration",
            "containerDefinitions[1].mountPoints",
            "containerDefinitions[1].readonlyRootFilesystem",
            "containerDefinitions[1].dockerLabels",
            "containerDefinitions[1].linuxParameters",
        ]
    } | {
        f"containerDefinitions[{i}].image: recorded; the process driver runs entryPoint + "
        "command, not the image"
        for i in (0, 1)
    }
    expected.add(
        f"containerDefinitions[1].logConfiguration.options['Name']: Name 'cloudwatch': {LOCAL_ONLY}"
    )
    assert warnings == expected
    td = parsed.task_definition
    assert td.ignored["networkMode"] == "awsvpc"
    assert td.container_definitions[1].ignored["dockerLabels"] == {"team": "web"}


@pytest.mark.parametrize("field", sorted(TASK_FIELDS_NOT_USED))
def test_every_unused_task_field_is_kept_reported_and_restored(field):
    data = minimal(command=["true"])
    data[field] = {"some": ["value"]}
    parsed = parse_task_definition(data)
    assert FieldError(field, NOT_USED) in parsed.warnings
    assert parsed.task_definition.ignored == {field: {"some": ["value"]}}
    assert export_task_definition(parsed.task_definition) == data


@pytest.mark.parametrize("field", sorted(CONTAINER_FIELDS_NOT_USED))
def test_every_unused_container_field_is_kept_reported_and_restored(field):
    data = minimal(command=["true"])
    data["containerDefinitions"][0][field] = ["x"]
    parsed = parse_task_definition(data)
    assert FieldError(f"containerDefinitions[0].{field}", NOT_USED) in parsed.warnings
    assert export_task_definition(parsed.task_definition) == data


def test_empty_unused_values_are_kept_without_a_warning():
    data = minimal(command=["true"], mountPoints=[], volumesFrom=[])
    data["placementConstraints"] = []
    parsed = parse_task_definition(data)
    assert parsed.warnings == []
    assert export_task_definition(parsed.task_definition) == data


def test_describe_output_is_accepted_with_assigned_fields_ignored(example):
    data = example("describe_output")
    parsed = parse_task_definition(data)
    td = parsed.task_definition
    assert (td.family, td.revision, td.registered_at) == ("api", 0, None)
    assert (td.cpu, td.memory) == (256, 512)
    assert [t.key for t in td.tags] == ["service"]  # from the wrapper's sibling "tags"
    warnings = {w.path: w.message for w in parsed.warnings}
    for field in ASSIGNED_FIELDS - {"deregisteredAt"}:
        assert warnings[f"taskDefinition.{field}"] == "ignored, assigned by hatoba"
    assert warnings["taskDefinition.networkMode"] == NOT_USED
    # empty lists describe always prints are kept silently
    assert "taskDefinition.volumes" not in warnings
    assert "taskDefinition.containerDefinitions[0].mountPoints" not in warnings

    exported = export_task_definition(td)
    inner = data["taskDefinition"]
    for field in ASSIGNED_FIELDS:
        inner.pop(field, None)
    assert exported == {**inner, "tags": data["tags"]}


def test_export_with_assigned_fields_looks_like_describe_output(example):
    td = parse_task_definition(example("worker_secrets")).task_definition
    td = td.model_copy(update={"revision": 4})
    out = export_task_definition(td, include_assigned=True)
    assert out["taskDefinitionArn"] == "billing-worker:4"
    assert (out["revision"], out["status"]) == (4, "ACTIVE")
    assert "registeredAt" not in out
    # and it can be pasted back in
    again = parse_task_definition(out)
    assert again.task_definition.revision == 0
    assert FieldError("taskDefinitionArn", "ignored, assigned by hatoba") in again.warnings


def test_describe_wrapper_errors_are_prefixed():
    data = {"taskDefinition": minimal(command=["true"], memory=1)}
    assert [str(e) for e in errors_of(data)] == [
        "taskDefinition.containerDefinitions[0].memory: must be ≥ 6 (MiB)"
    ]


@pytest.mark.parametrize(
    ("where", "typo", "suggestion"),
    [
        ("task", "containerDefinition", "containerDefinitions"),
        ("task", "Tags", "tags"),
        ("task", "netwrkMode", "networkMode"),
        ("container", "comand", "command"),
        ("container", "entrypoint", "entryPoint"),
        ("container", "memoryReservaton", "memoryReservation"),
        ("container", "dockerLabel", "dockerLabels"),
        ("container", "stop_timout", "stopTimeout"),
    ],
)
def test_typos_get_did_you_mean(where, typo, suggestion):
    data = minimal(command=["true"])
    target = data if where == "task" else data["containerDefinitions"][0]
    target[typo] = 1
    prefix = "" if where == "task" else "containerDefinitions[0]."
    errors = errors_of(data)
    assert FieldError(f"{prefix}{typo}", f"unknown field; did you mean {suggestion!r}?") in errors


def test_typo_in_nested_object_suggests_from_that_object():
    data = minimal(command=["true"], healthCheck={"command": ["CMD", "true"], "intervall": 10})
    assert errors_of(data) == [
        FieldError(
            "containerDefinitions[0].healthCheck.intervall",
            "unknown field; did you mean 'interval'?",
        )
    ]


def test_field_at_the_wrong_level_says_so():
    data = minimal(command=["true"], networkMode="host")
    data["essential"] = True
    errors = {e.path: e.message for e in errors_of(data)}
    assert "task-level field" in errors["containerDefinitions[0].networkMode"]
    assert "container field" in errors["essential"]


def test_unknown_field_without_a_close_match():
    data = minimal(command=["true"], zzz=1)
    assert errors_of(data) == [
        FieldError(
            "containerDefinitions[0].zzz", "unknown field (neither ECS nor hatoba has it here)"
        )
    ]


@pytest.mark.parametrize(
    ("cpu", "units"),
    [(256, 256), ("256", 256), ("1024", 1024), ("1 vCPU", 1024), ("0.5 vcpu", 512),
     ("2vCPU", 2048), ("0.25 vCPU", 256), (1024.0, 1024)],
)  # fmt: skip
def test_task_cpu_forms(cpu, units):
    data = minimal(command=["true"])
    data["cpu"] = cpu
    td = parse_task_definition(data).task_definition
    assert td.cpu == units
    assert export_task_definition(td)["cpu"] == str(units)


@pytest.mark.parametrize(
    ("memory", "mib"),
    [(512, 512), ("512", 512), ("1 GB", 1024), ("2GB", 2048), ("0.5 GB", 512),
     ("512 MiB", 512), ("3gb", 3072)],
)  # fmt: skip
def test_task_memory_forms(memory, mib):
    data = minimal(command=["true"])
    data["memory"] = memory
    assert parse_task_definition(data).task_definition.memory == mib


@pytest.mark.parametrize(
    ("field", "value"),
    [("cpu", "fast"), ("cpu", "0.0001 vCPU"), ("cpu", True), ("memory", "1 TB"), ("memory", "big")],
)
def test_bad_task_cpu_memory_name_the_field(field, value):
    data = minimal(command=["true"])
    data[field] = value
    (error,) = errors_of(data)
    assert error.path == field
    assert error.message.startswith("must be ")


def test_errors_use_camel_case_paths_even_for_snake_case_input():
    data = minimal(command=["true"], health_check={"command": ["CMD", "x"], "start_period": 900})
    assert errors_of(data) == [
        FieldError("containerDefinitions[0].healthCheck.startPeriod", "must be ≤ 300 (seconds)")
    ]


def test_all_field_errors_are_collected_with_exact_paths():
    data = {
        "family": "bad family!",
        "containerDefinitions": [
            {"name": "ok", "command": ["true"], "memory": 4},
            {
                "command": "echo hi",
                "healthCheck": {"command": ["CMD-SHELL", "true"], "interval": 1, "retries": 11},
                "portMappings": [{"containerPort": 70000, "protocol": "sctp"}],
                "ulimits": [{"name": "files", "softLimit": 1, "hardLimit": 2}],
                "stopSignal": "SIGWHATEVER",
                "dependsOn": [{"containerName": "ok", "condition": "READY"}],
                "environment": [{"name": "A"}],
                "stopTimeout": -1,
            },
        ],
    }
    errors = {e.path: e.message for e in errors_of(data)}
    assert errors == {
        "family": "must be 1-255 letters, digits, hyphens or underscores",
        "containerDefinitions[0].memory": "must be ≥ 6 (MiB)",
        "containerDefinitions[1].name": "field required",
        "containerDefinitions[1].environment[0].value": "field required",
        "containerDefinitions[1].ulimits[0].name": errors[
            "containerDefinitions[1].ulimits[0].name"
        ],
        "containerDefinitions[1].stopTimeout": "must be ≥ 0 (seconds)",
        "containerDefinitions[1].stopSignal": (
            'must be a signal name such as "SIGTERM", "SIGINT", "SIGQUIT" or "SIGUSR1"'
        ),
        "containerDefinitions[1].dependsOn[0].condition": (
            "must be 'START', 'COMPLETE', 'SUCCESS' or 'HEALTHY'"
        ),
        "containerDefinitions[1].healthCheck.interval": "must be ≥ 5 (seconds)",
        "containerDefinitions[1].healthCheck.retries": "must be ≤ 10",
        "containerDefinitions[1].portMappings[0].containerPort": "must be ≤ 65535",
        "containerDefinitions[1].portMappings[0].protocol": "must be 'tcp' or 'udp'",
    }
    assert errors["containerDefinitions[1].ulimits[0].name"].startswith("must be 'core', 'cpu'")


def test_a_bad_field_does_not_hide_cross_field_errors_of_other_containers():
    data = {
        "family": "app",
        "containerDefinitions": [
            {"name": "a", "command": ["true"], "memory": 1},
            {"name": "b", "command": "echo hi"},
        ],
    }
    assert paths(errors_of(data)) == {
        "containerDefinitions[0].memory",
        "containerDefinitions[1].command",
    }


@pytest.mark.parametrize("bad", [[], "x", None])
def test_container_definitions_must_be_a_non_empty_list(bad):
    data = {"family": "app", "containerDefinitions": bad}
    (error,) = errors_of(data)
    assert error.path == "containerDefinitions"


def test_not_an_object():
    with pytest.raises(ValidationFailed) as info:
        parse_task_definition([1, 2])  # type: ignore[arg-type]
    assert info.value.errors == [FieldError("", "must be a JSON object")]


def test_missing_family():
    assert errors_of({"containerDefinitions": [{"name": "a", "command": ["x"]}]}) == [
        FieldError("family", "field required")
    ]
