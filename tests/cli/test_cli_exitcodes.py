"""How ``hatoba run`` maps a finished task to its exit status."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from hatoba.cli.exitcodes import (
    outcome_message,
    process_exit_status,
    run_exit_status,
    start_exit_status,
)
from hatoba.model.task import Container, LastStatus, StopCode, Task


def task(**kw: Any) -> Task:
    base: dict[str, Any] = {
        "task_id": "t1",
        "task_definition_arn": "job:1",
        "created_at": datetime.now(UTC),
        "last_status": LastStatus.STOPPED,
        "containers": [Container(name="main")],
    }
    return Task(**{**base, **kw})


def test_essential_exit_code_passes_through() -> None:
    t = task(
        stop_code=StopCode.ESSENTIAL_CONTAINER_EXITED,
        containers=[
            Container(name="side", essential=False, exit_code=9),
            Container(name="main", exit_code=3),
        ],
    )
    assert run_exit_status(t) == 3
    assert outcome_message(t) is None


@pytest.mark.parametrize(
    ("stop_code", "exit_code", "status"),
    [
        (StopCode.TASK_FAILED_TO_START, None, 125),
        (StopCode.TASK_TIMED_OUT, 143, 124),
        (StopCode.LOST, None, 123),
        (StopCode.USER_INITIATED, None, 123),
        (StopCode.USER_INITIATED, 143, 143),
        (StopCode.ESSENTIAL_CONTAINER_EXITED, 0, 0),
    ],
)
def test_hatoba_outcomes(stop_code: StopCode, exit_code: int | None, status: int) -> None:
    t = task(
        stop_code=stop_code,
        stopped_reason="why",
        containers=[Container(name="main", exit_code=exit_code)],
    )
    assert run_exit_status(t) == status
    if status in (123, 124, 125):
        message = outcome_message(t)
        assert message is not None and "why" in message


@pytest.mark.parametrize(
    ("code", "status"), [(0, 0), (3, 3), (-9, 137), (-15, 143), (256, 0), (300, 44)]
)
def test_process_exit_status(code: int, status: int) -> None:
    assert process_exit_status(code) == status


def test_start_status_only_fails_on_failure_to_start() -> None:
    assert start_exit_status(task(last_status=LastStatus.RUNNING)) == 0
    assert start_exit_status(task(stop_code=StopCode.ESSENTIAL_CONTAINER_EXITED)) == 0
    assert start_exit_status(task(stop_code=StopCode.TASK_FAILED_TO_START)) == 125
