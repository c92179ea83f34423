"""Services: N copies of a task definition kept running (REPLICA), or one per node (DAEMON),
rolled from one task definition to the next by deployments. ECS's names and shapes.

A service's tasks carry ``group = "service:NAME"`` and ``startedBy = <deployment id>``, so
every task can be traced to the deployment that started it.
"""

from __future__ import annotations

import math
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field, field_validator

from hatoba.model.base import WireModel

SERVICE_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,254}$"
MAX_DESIRED_COUNT = 10_000
MAX_EVENTS_KEPT = 100  # per service, as ECS shows
DEFAULT_MIN_HEALTHY_TIME = 3  # seconds


class SchedulingStrategy(StrEnum):
    REPLICA = "REPLICA"
    DAEMON = "DAEMON"


class ServiceStatus(StrEnum):
    ACTIVE = "ACTIVE"
    DRAINING = "DRAINING"  # deleted; its tasks are being stopped
    INACTIVE = "INACTIVE"


class DeploymentStatus(StrEnum):
    PRIMARY = "PRIMARY"  # the newest: what the service converges to
    ACTIVE = "ACTIVE"  # an older one still holding tasks, being drained
    INACTIVE = "INACTIVE"  # done; kept only in history


class RolloutState(StrEnum):
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


class CircuitBreaker(WireModel):
    enable: bool = False
    rollback: bool = False


class DeploymentConfiguration(WireModel):
    """``None`` percentages take ECS's defaults for the scheduling strategy: 100/200 for
    REPLICA, 0/100 for DAEMON."""

    deployment_circuit_breaker: CircuitBreaker = Field(default_factory=CircuitBreaker)
    maximum_percent: int | None = Field(default=None, ge=100, le=1000)
    minimum_healthy_percent: int | None = Field(default=None, ge=0, le=100)
    # hatoba's addition (Nomad's min_healthy_time): a RUNNING task counts as healthy only
    # once it has run this long (and passed its health check, if it has one). Without it, a
    # revision that crashes a moment after starting looks healthy long enough to replace
    # every old task and complete its deployment before the circuit breaker sees a failure.
    minimum_healthy_time_seconds: int = Field(default=DEFAULT_MIN_HEALTHY_TIME, ge=0, le=3600)

    def limits(self, strategy: SchedulingStrategy) -> tuple[int, int]:
        """(minimumHealthyPercent, maximumPercent) with defaults applied."""
        daemon = strategy == SchedulingStrategy.DAEMON
        low = self.minimum_healthy_percent
        high = self.maximum_percent
        return (
            (0 if daemon else 100) if low is None else low,
            (100 if daemon else 200) if high is None else high,
        )


def minimum_healthy_tasks(desired: int, percent: int) -> int:
    """ECS rounds the minimum up."""
    return math.ceil(desired * percent / 100)


def maximum_tasks(desired: int, percent: int) -> int:
    """ECS rounds the maximum down."""
    return math.floor(desired * percent / 100)


def circuit_breaker_threshold(desired: int) -> int:
    """ceil(0.5 * desired), clamped to [3, 200] (ECS)."""
    return min(200, max(3, math.ceil(0.5 * desired)))


class Deployment(WireModel):
    id: str  # "hd-" + hex; also each of its tasks' startedBy
    status: DeploymentStatus
    task_definition: str  # "family:revision"
    desired_count: int = 0
    # filled in when described (counted from tasks), not stored
    pending_count: int = 0
    running_count: int = 0
    failed_tasks: int = 0  # stored: counted by the controller, drives the circuit breaker
    rollout_state: RolloutState = RolloutState.IN_PROGRESS
    rollout_state_reason: str = ""
    created_at: datetime
    updated_at: datetime
    # set on a deployment created by an automatic rollback: the id of the one that failed
    rollback_of: str | None = None


class RestartThrottle(WireModel):
    """ECS's task-launch throttle: after tasks keep failing to start (or die right after
    starting), the next launch waits ``delay`` seconds more each time, up to 15 minutes."""

    consecutive_failures: int = 0
    next_launch_at: datetime | None = None


class ServiceSpec(WireModel):
    """What a user declares (CreateService / UpdateService / the app file)."""

    service_name: str = Field(pattern=SERVICE_NAME_PATTERN)
    task_definition: str  # family, family:revision or ARN
    desired_count: int = Field(default=1, ge=0, le=MAX_DESIRED_COUNT)
    scheduling_strategy: SchedulingStrategy = SchedulingStrategy.REPLICA
    deployment_configuration: DeploymentConfiguration = Field(
        default_factory=DeploymentConfiguration
    )
    placement_constraints: list[dict[str, Any]] = Field(default_factory=list)
    placement_strategy: list[dict[str, Any]] = Field(default_factory=list)
    health_check_grace_period_seconds: int = Field(default=0, ge=0, le=2_147_483_647)

    @field_validator("task_definition")
    @classmethod
    def _non_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v


class ServiceUpdate(WireModel):
    """UpdateService: only the fields given change. A new task definition (or
    ``forceNewDeployment``) starts a deployment; the rest apply in place."""

    task_definition: str | None = None
    desired_count: int | None = Field(default=None, ge=0, le=MAX_DESIRED_COUNT)
    deployment_configuration: DeploymentConfiguration | None = None
    placement_constraints: list[dict[str, Any]] | None = None
    placement_strategy: list[dict[str, Any]] | None = None
    health_check_grace_period_seconds: int | None = Field(default=None, ge=0, le=2_147_483_647)
    force_new_deployment: bool = False


class Service(WireModel):
    service_name: str
    cluster: str = "default"
    status: ServiceStatus = ServiceStatus.ACTIVE
    task_definition: str  # the PRIMARY deployment's "family:revision"
    desired_count: int = 0
    scheduling_strategy: SchedulingStrategy = SchedulingStrategy.REPLICA
    deployment_configuration: DeploymentConfiguration = Field(
        default_factory=DeploymentConfiguration
    )
    placement_constraints: list[dict[str, Any]] = Field(default_factory=list)
    placement_strategy: list[dict[str, Any]] = Field(default_factory=list)
    health_check_grace_period_seconds: int = 0
    deployments: list[Deployment] = Field(default_factory=list)
    # filled in when described (counted from tasks), not stored
    running_count: int = 0
    pending_count: int = 0
    created_at: datetime
    updated_at: datetime
    # the task definition of the last deployment that reached COMPLETED (rollback target)
    completed_task_definition: str | None = None
    # controller bookkeeping
    throttle: RestartThrottle = Field(default_factory=RestartThrottle)
    # stopped tasks already accounted for (failures counted, events written): those that
    # stopped at or before ``tasks_seen_until`` (ties: ids listed in ``tasks_seen_ids``)
    tasks_seen_until: datetime | None = None
    tasks_seen_ids: list[str] = Field(default_factory=list)
    version: int = 0  # compare-and-set counter, owned by the store

    @property
    def group(self) -> str:
        return service_group(self.service_name)

    @property
    def primary(self) -> Deployment | None:
        for d in self.deployments:
            if d.status == DeploymentStatus.PRIMARY:
                return d
        return None


def service_group(name: str) -> str:
    return f"service:{name}"


class ServiceEvent(WireModel):
    service_name: str
    created_at: datetime
    message: str
    id: int = 0  # assigned by the store, increasing
