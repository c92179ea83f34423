"""Pure parsing of ``hatoba run`` options: durations, K=V, overrides, shrink warnings."""

from __future__ import annotations

import pytest
import typer

from hatoba.cli.parsing import (
    build_overrides,
    parse_duration,
    parse_env,
    shrink_warnings,
    target_container,
)
from hatoba.model.taskdef import TaskDefinition


def taskdef(**extra: object) -> TaskDefinition:
    return TaskDefinition.model_validate(
        {
            "family": "job",
            "revision": 2,
            "containerDefinitions": [
                {"name": "sidecar", "command": ["sleep", "1"], "essential": False},
                {"name": "main", "command": ["echo", "hi"]},
            ],
            **extra,
        }
    )


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90.0),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("1.5h", 5400.0),
        ("250ms", 0.25),
        ("2d", 172800.0),
        (" 10M ", 600.0),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5x", "m5", "1h 30m", "-5s", "0", "0s", "1h30"])
def test_bad_durations_name_the_option(text: str) -> None:
    with pytest.raises(typer.BadParameter, match="--timeout"):
        parse_duration(text, "--timeout")


def test_env_pairs() -> None:
    env = parse_env(["A=1", "B=x=y", "C=", "A=2"])
    assert [(kv.name, kv.value) for kv in env] == [("A", "2"), ("B", "x=y"), ("C", "")]


@pytest.mark.parametrize("item", ["A", "=1", ""])
def test_bad_env_names_the_option(item: str) -> None:
    with pytest.raises(typer.BadParameter, match="--env: expected NAME=VALUE"):
        parse_env([item])


def test_command_goes_to_first_essential_container() -> None:
    td = taskdef()
    assert target_container(td, None) == "main"
    o = build_overrides(td, command=["python", "-V"])
    assert [(c.name, c.command) for c in o.container_overrides] == [("main", ["python", "-V"])]
    assert o.cpu is None and o.memory is None


def test_command_goes_to_named_container_and_unknown_is_rejected() -> None:
    td = taskdef()
    o = build_overrides(td, command=["true"], container="sidecar")
    assert [c.name for c in o.container_overrides] == ["sidecar"]
    with pytest.raises(typer.BadParameter, match="--container: no container 'nope' in job:2"):
        build_overrides(td, command=["true"], container="nope")


def test_env_applies_to_every_container_unless_one_is_named() -> None:
    td = taskdef()
    o = build_overrides(td, command=["x"], env=["K=V"], cpu=512, memory=256)
    assert [c.name for c in o.container_overrides] == ["sidecar", "main"]
    main = o.container_overrides[1]
    assert main.command == ["x"] and [(e.name, e.value) for e in main.environment] == [("K", "V")]
    assert (o.cpu, o.memory) == (512, 256)
    only = build_overrides(td, env=["K=V"], container="sidecar")
    assert [c.name for c in only.container_overrides] == ["sidecar"]
    wire = only.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert wire["containerOverrides"][0]["environment"] == [{"name": "K", "value": "V"}]


def test_shrink_warnings_compare_with_the_definition() -> None:
    td = taskdef(cpu=1024, memory=512)
    assert shrink_warnings(td, build_overrides(td, cpu=2048, memory=512)) == []
    msgs = shrink_warnings(td, build_overrides(td, cpu=256, memory=128))
    assert len(msgs) == 2 and "--cpu 256" in msgs[0] and "--memory 128" in msgs[1]
    assert shrink_warnings(taskdef(), build_overrides(taskdef(), cpu=1)) == []
