"""Request and response bodies that are not plain model objects."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from hatoba.model.base import WireModel
from hatoba.model.node import NodeDescription
from hatoba.model.task import Task, TaskOverride
from hatoba.model.taskdef import TaskDefinition


class FieldProblem(WireModel):
    path: str
    message: str


class RegisterResponse(WireModel):
    task_definition: TaskDefinition
    warnings: list[FieldProblem] = Field(default_factory=list)


class PlacementConstraintBody(WireModel):
    """ECS ``placementConstraints`` item: ``memberOf`` with a cluster query ``expression``,
    or ``distinctInstance``."""

    type: str
    expression: str | None = None


class PlacementStrategyBody(WireModel):
    """ECS ``placementStrategy`` item: ``binpack`` (cpu|memory), ``spread`` (instanceId,
    nodeId or attribute:<name>) or ``random``."""

    type: str
    field: str | None = None


class RunTaskBody(WireModel):
    task_definition: str
    count: int = 1
    overrides: TaskOverride = Field(default_factory=TaskOverride)
    started_by: str | None = None
    group: str | None = None
    timeout_seconds: float | None = None
    allow_shrink: bool = False
    placement_constraints: list[PlacementConstraintBody] = Field(default_factory=list)
    placement_strategy: list[PlacementStrategyBody] = Field(default_factory=list)


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


class NodeList(WireModel):
    nodes: list[NodeDescription]


class Health(WireModel):
    status: str
    version: str
    node_id: str


ExportedTaskDefinition = dict[str, Any]
