"""Tasks: one running instance of a task definition on a node, with ECS's lifecycle."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field

from hatoba.model.base import WireModel


class DesiredStatus(StrEnum):
    RUNNING = "RUNNING"
    STOPPED = "STOPPED"


class LastStatus(StrEnum):
    """ECS task lifecycle, in order."""

    PROVISIONING = "PROVISIONING"
    PENDING = "PENDING"
    ACTIVATING = "ACTIVATING"
    RUNNING = "RUNNING"
    DEACTIVATING = "DEACTIVATING"
    STOPPING = "STOPPING"
    DEPROVISIONING = "DEPROVISIONING"
    STOPPED = "STOPPED"

    @property
    def rank(self) -> int:
        return _ORDER.index(self)


_ORDER = list(LastStatus)


class ContainerStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    STOPPED = "STOPPED"


class HealthStatus(StrEnum):
    HEALTHY = "HEALTHY"
    UNHEALTHY = "UNHEALTHY"
    UNKNOWN = "UNKNOWN"


class StopCode(StrEnum):
    TASK_FAILED_TO_START = "TaskFailedToStart"
    ESSENTIAL_CONTAINER_EXITED = "EssentialContainerExited"
    USER_INITIATED = "UserInitiated"
    SERVICE_SCHEDULER_INITIATED = "ServiceSchedulerInitiated"
    TASK_TIMED_OUT = "TaskTimedOut"
    TERMINATION_NOTICE = "TerminationNotice"
    LOST = "TaskLost"


class KeyValue(WireModel):
    name: str
    value: str


class ContainerOverride(WireModel):
    """RunTask containerOverrides entry (ECS form)."""

    name: str
    command: list[str] | None = None
    environment: list[KeyValue] = Field(default_factory=list)
    cpu: int | None = Field(default=None, ge=0)
    memory: int | None = Field(default=None, ge=6)
    memory_reservation: int | None = Field(default=None, ge=6)


class TaskOverride(WireModel):
    """RunTask overrides (ECS form). Task-level ``cpu`` in units (1024 = 1 core), ``memory``
    in MiB."""

    container_overrides: list[ContainerOverride] = Field(default_factory=list)
    cpu: int | None = Field(default=None, ge=0)
    memory: int | None = Field(default=None, ge=6)


class Container(WireModel):
    """The state of one container of a task."""

    name: str
    essential: bool = True
    last_status: ContainerStatus = ContainerStatus.PENDING
    exit_code: int | None = None
    reason: str | None = None
    health_status: HealthStatus = HealthStatus.UNKNOWN
    runtime_id: str | None = None
    pid: int | None = None
    cpu: int = 0
    memory: int | None = None
    memory_reservation: int | None = None
    started_at: datetime | None = None
    stopped_at: datetime | None = None
    # Driver-specific state needed to re-adopt the container after a control-plane restart.
    handle: dict[str, Any] | None = None
    # Consecutive failed health checks, and when health checking may start counting.
    health_failures: int = 0


class Task(WireModel):
    task_id: str
    task_definition_arn: str  # "family:revision"
    cluster: str = "default"
    node_id: str | None = None
    desired_status: DesiredStatus = DesiredStatus.RUNNING
    last_status: LastStatus = LastStatus.PROVISIONING
    health_status: HealthStatus = HealthStatus.UNKNOWN
    stop_code: StopCode | None = None
    stopped_reason: str | None = None
    # why a service task is still waiting for a node (lastStatus PROVISIONING, no nodeId):
    # the placement's summary, e.g. "RESOURCE:MEMORY (2 nodes)"
    pending_reason: str | None = None
    containers: list[Container] = Field(default_factory=list)
    cpu: int = 0  # cpu units reserved on the node
    memory: int = 0  # MiB reserved on the node
    overrides: TaskOverride = Field(default_factory=TaskOverride)
    started_by: str | None = None
    group: str | None = None
    launch_type: str = "PROCESS"
    timeout_seconds: float | None = None  # max run time; exceeded -> TaskTimedOut
    # The essential container whose own exit stopped the task (its code is the task's).
    exit_container: str | None = None
    created_at: datetime
    pull_started_at: datetime | None = None
    started_at: datetime | None = None
    stopping_at: datetime | None = None
    execution_stopped_at: datetime | None = None
    stopped_at: datetime | None = None
    # task scale-in protection (ECS's): until then, a service's scale-in never stops this
    # task; set by the task itself through the agent endpoint, or by an operator
    protected_until: datetime | None = None
    version: int = 0  # compare-and-set counter, owned by the store

    def container(self, name: str) -> Container:
        for c in self.containers:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def family(self) -> str:
        return self.task_definition_arn.rsplit(":", 1)[0]

    @property
    def exit_code(self) -> int | None:
        """The exit code that `hatoba run` passes through.

        The essential container whose exit stopped the task, else the first essential
        container with an exit code.
        """
        if self.exit_container is not None:
            return self.container(self.exit_container).exit_code
        for c in self.containers:
            if not c.essential:
                continue
            if c.exit_code is not None:
                return c.exit_code
        return None
