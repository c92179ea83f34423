"""Service autoscaling, with Application Auto Scaling's names and shapes: a scalable target
(min/max per service), scaling policies (target tracking, step), scheduled actions that set
min/max at given times, and the activity log of every change a decision made.

Metric specs are kept as given (``dict``): they are validated by ``hatoba.scalers`` at the
controller, since the model layer does not know the metric sources.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field, model_validator

from hatoba.model.base import WireModel
from hatoba.model.service import MAX_DESIRED_COUNT

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,254}$"
MAX_ACTIVITIES_KEPT = 500  # per service
DEFAULT_COOLDOWN = 300  # seconds: Application Auto Scaling's default for ECS step policies
DEFAULT_STABILIZATION = 300  # seconds of scale-in stabilization (HPA's default window)
DEFAULT_SCALE_TO_ZERO_COOLDOWN = 300  # KEDA's cooldownPeriod
MAX_SECONDS = 86_400


class SuspendedState(WireModel):
    dynamic_scaling_in_suspended: bool = False
    dynamic_scaling_out_suspended: bool = False
    scheduled_scaling_suspended: bool = False


class ScalableTarget(WireModel):
    """A service's bounds for autoscaling. Policies and scheduled actions hang off it."""

    service_name: str
    min_capacity: int = Field(ge=0, le=MAX_DESIRED_COUNT)
    max_capacity: int = Field(ge=0, le=MAX_DESIRED_COUNT)
    suspended_state: SuspendedState = Field(default_factory=SuspendedState)
    # hatoba's (KEDA's cooldownPeriod): the wait before any scale to 0, counted from the
    # last time a metric showed work (or the last scaling activity), whichever is later
    scale_to_zero_cooldown_seconds: int = Field(
        default=DEFAULT_SCALE_TO_ZERO_COOLDOWN, ge=0, le=MAX_SECONDS
    )
    created_at: datetime
    updated_at: datetime
    # bookkeeping of the scaling loop: scheduled action name -> when it last fired
    scheduled_fired: dict[str, datetime] = Field(default_factory=dict)
    version: int = 0  # compare-and-set counter, owned by the store

    @model_validator(mode="after")
    def _bounds(self) -> ScalableTarget:
        if self.min_capacity > self.max_capacity:
            raise ValueError(
                f"minCapacity {self.min_capacity} is above maxCapacity {self.max_capacity}"
            )
        return self


class PolicyType(StrEnum):
    TARGET_TRACKING = "TargetTrackingScaling"
    STEP = "StepScaling"


class MetricType(StrEnum):
    VALUE = "Value"  # HPA's utilization form: desired = ceil(current * metric / target)
    AVERAGE_VALUE = "AverageValue"  # KEDA's backlog form: desired = ceil(metric / target)


class TargetTrackingConfiguration(WireModel):
    metric: dict[str, Any]
    target_value: float = Field(gt=0)
    metric_type: MetricType = MetricType.AVERAGE_VALUE
    tolerance: float = Field(default=0.1, ge=0, lt=1)
    disable_scale_in: bool = False
    scale_in_stabilization_seconds: int = Field(default=DEFAULT_STABILIZATION, ge=0, le=MAX_SECONDS)
    # from 0 tasks, scale out only when the metric is above this (KEDA's activation)
    activation_value: float = Field(default=0.0, ge=0)


class ComparisonOperator(StrEnum):
    GREATER_THAN_OR_EQUAL = "GreaterThanOrEqualToThreshold"
    GREATER_THAN = "GreaterThanThreshold"
    LESS_THAN = "LessThanThreshold"
    LESS_THAN_OR_EQUAL = "LessThanOrEqualToThreshold"

    @property
    def above(self) -> bool:
        return self in (ComparisonOperator.GREATER_THAN_OR_EQUAL, ComparisonOperator.GREATER_THAN)


class AdjustmentType(StrEnum):
    CHANGE_IN_CAPACITY = "ChangeInCapacity"
    EXACT_CAPACITY = "ExactCapacity"
    PERCENT_CHANGE_IN_CAPACITY = "PercentChangeInCapacity"


class StepAdjustment(WireModel):
    """Bounds are relative to the threshold (metric - threshold); None is unbounded."""

    metric_interval_lower_bound: float | None = None
    metric_interval_upper_bound: float | None = None
    scaling_adjustment: int


class StepScalingConfiguration(WireModel):
    """The alarm (metric compared with threshold) and the policy it triggers, in one."""

    metric: dict[str, Any]
    threshold: float
    comparison_operator: ComparisonOperator
    adjustment_type: AdjustmentType = AdjustmentType.CHANGE_IN_CAPACITY
    step_adjustments: list[StepAdjustment] = Field(min_length=1)
    min_adjustment_magnitude: int | None = Field(default=None, ge=1)
    cooldown: int = Field(default=DEFAULT_COOLDOWN, ge=0, le=MAX_SECONDS)


class ScalingPolicy(WireModel):
    policy_name: str = Field(pattern=NAME_PATTERN)
    service_name: str
    policy_type: PolicyType
    target_tracking_configuration: TargetTrackingConfiguration | None = None
    step_scaling_configuration: StepScalingConfiguration | None = None
    created_at: datetime
    updated_at: datetime

    @property
    def metric(self) -> dict[str, Any]:
        cfg = self.target_tracking_configuration or self.step_scaling_configuration
        return {} if cfg is None else cfg.metric


class ScheduledAction(WireModel):
    """Sets the target's min and/or max at each time its schedule fires."""

    scheduled_action_name: str = Field(pattern=NAME_PATTERN)
    service_name: str
    schedule: str  # cron(...), rate(...), at(...) (hatoba.model.schedule)
    timezone: str = "UTC"
    min_capacity: int | None = Field(default=None, ge=0, le=MAX_DESIRED_COUNT)
    max_capacity: int | None = Field(default=None, ge=0, le=MAX_DESIRED_COUNT)
    start_time: datetime | None = None
    end_time: datetime | None = None
    created_at: datetime
    updated_at: datetime


class ActivityStatus(StrEnum):
    SUCCESSFUL = "Successful"
    FAILED = "Failed"


class ScalingActivity(WireModel):
    """One change of a service's count (or bounds) by autoscaling, and why."""

    activity_id: str
    service_name: str
    at: datetime
    policy_name: str | None = None  # the deciding policy or scheduled action, if any
    metric_value: float | None = None
    from_count: int
    to_count: int
    reason: str
    status: ActivityStatus = ActivityStatus.SUCCESSFUL
    status_message: str | None = None


DEFAULT_PROTECTION_MINUTES = 120  # ECS's default for task scale-in protection
MAX_PROTECTION_MINUTES = 2880  # ECS's maximum (48 hours)


class TaskProtection(WireModel):
    """A task's scale-in protection, in ECS's shape (``expirationDate`` while enabled)."""

    task_id: str
    protection_enabled: bool
    expiration_date: datetime | None = None
