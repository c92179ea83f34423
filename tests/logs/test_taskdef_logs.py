"""Validation of hatoba's log options and logFiles, each error at its JSON path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hatoba.agent.specs import build_specs
from hatoba.model.ecs_import import parse_task_definition
from hatoba.model.errors import ValidationFailed
from hatoba.model.layout import DataLayout
from hatoba.model.task import Task
from hatoba.model.taskdef_logs import log_settings


def taskdef(**container: Any) -> dict[str, Any]:
    c = {"name": "app", "command": ["run"], **container}
    return {"family": "app", "containerDefinitions": [c]}


def errors_of(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ValidationFailed) as info:
        parse_task_definition(data)
    return {e.path: e.message for e in info.value.errors}


def local(**options: str) -> dict[str, Any]:
    return {"logDriver": "json-file", "options": options}


def test_valid_settings_are_read() -> None:
    parsed = parse_task_definition(
        taskdef(
            workingDirectory="/srv/app",
            logConfiguration=local(
                **{
                    "hatoba-max-line": "256K",
                    "hatoba-multiline-start": r"^\d{4}-",
                    "hatoba-multiline-timeout": "2.5",
                }
            ),
            logFiles=[{"path": "log/*.log", "tag": "app"}, {"path": "/var/log/x.log"}],
        )
    )
    c = parsed.task_definition.container_definitions[0]
    settings = log_settings(c)
    assert (settings.max_line, settings.multiline_start) == (256 * 1024, r"^\d{4}-")
    assert settings.multiline_timeout == 2.5
    assert [f.path for f in c.log_files] == ["log/*.log", "/var/log/x.log"]
    # the capture maximum reaches the shim through the container's spec
    task = Task(task_id="t1", task_definition_arn="app:1", created_at="2025-01-01T00:00:00Z")
    specs = build_specs(
        parsed.task_definition,
        task,
        DataLayout(Path("/nonexistent")),
        base_env={},
        file_env={},
        secrets={},
        max_line=4096,
    )
    assert specs["app"].max_line_bytes == 256 * 1024


def test_awslogs_multiline_pattern_is_honoured() -> None:
    lc = {"logDriver": "awslogs", "options": {"awslogs-multiline-pattern": "^INFO"}}
    parsed = parse_task_definition(taskdef(logConfiguration=lc))
    assert log_settings(parsed.task_definition.container_definitions[0]).multiline_start == (
        "^INFO"
    )


def test_bad_settings_are_reported_by_path() -> None:
    errors = errors_of(
        taskdef(
            logConfiguration=local(
                **{
                    "hatoba-max-line": "lots",
                    "hatoba-multiline-start": "(unclosed",
                    "hatoba-multiline-timeout": "0",
                }
            ),
            logFiles=[
                {"path": "relative.log"},
                {"path": "/a/../b.log", "multilineStart": "["},
                {"path": "/x/relative.log"},
            ],
        )
    )
    at = "containerDefinitions[0]"
    opts = f"{at}.logConfiguration.options"
    assert set(errors) == {
        f"{opts}['hatoba-max-line']",
        f"{opts}['hatoba-multiline-start']",
        f"{opts}['hatoba-multiline-timeout']",
        f"{at}.logFiles[0].path",
        f"{at}.logFiles[1].path",
        f"{at}.logFiles[1].multilineStart",
        f"{at}.logFiles[2].tag",
    }
    assert "workingDirectory" in errors[f"{at}.logFiles[0].path"]
    assert "file:relative.log" in errors[f"{at}.logFiles[2].tag"]
    too_small = errors_of(taskdef(logConfiguration=local(**{"hatoba-max-line": "8"})))
    assert "between 16 bytes and 64 MiB" in too_small[f"{opts}['hatoba-max-line']"]
    assert "logFiles" in str(errors_of(taskdef(logFiles=[{"pth": "x"}])))


def test_node_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from hatoba.config import ConfigError, Settings

    monkeypatch.setenv("HATOBA_LOG_MAX_LINE", "256K")
    monkeypatch.setenv("HATOBA_LOG_MAX_BYTES", "2GiB")
    settings = Settings.from_env()
    assert (settings.log_max_line, settings.log_max_bytes) == (256 * 1024, 2 * 1024**3)
    monkeypatch.setenv("HATOBA_LOG_MAX_LINE", "1G")
    with pytest.raises(ConfigError, match="HATOBA_LOG_MAX_LINE"):
        Settings.from_env()
