"""Request and response bodies that are not plain model objects."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from hatoba.model.base import WireModel
from hatoba.model.task import Task, TaskOverride
from hatoba.model.taskdef import TaskDefinition


class FieldProblem(WireModel):
    path: str
    message: str


class RegisterResponse(WireModel):
    task_definition: TaskDefinition
    warnings: list[FieldProblem] = Field(default_factory=list)


class RunTaskBody(WireModel):
    task_definition: str
    count: int = 1
    overrides: TaskOverride = Field(default_factory=TaskOverride)
    started_by: str | None = None
    group: str | None = None
    timeout_seconds: float | None = None
    allow_shrink: bool = False


class RunFailure(WireModel):
    arn: str
    reason: str
    detail: str


class RunTaskResponse(WireModel):
    tasks: list[Task]
    failures: list[RunFailure]


class StopTaskBody(WireModel):
    reason: str | None = None


class TaskList(WireModel):
    tasks: list[Task]


class TaskDefinitionList(WireModel):
    task_definitions: list[TaskDefinition]


class Health(WireModel):
    status: str
    version: str
    node_id: str


ExportedTaskDefinition = dict[str, Any]
