"""What the autoscaling API answers beyond the stored records (``model.scaling``): a
service's scaling described whole, with each policy's metric as the scaling loop last read
it, its last decision, the service's counts and each scheduled action's next fire time."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from hatoba.model.base import WireModel
from hatoba.model.scaling import ScalableTarget, ScalingActivity, ScalingPolicy, ScheduledAction


class LoopRole(StrEnum):
    LEADER = "leader"  # this control plane polls the metrics and scales
    STANDBY = "standby"  # another one does: no live metrics here
    DISABLED = "disabled"  # no scaling loop runs in this control plane


class MetricStatusView(WireModel):
    """A policy's metric: the last good value (and when it was read), or why it failed."""

    value: float | None = None
    at: datetime | None = None
    error: str | None = None
    kind: str | None = None


class VoteView(WireModel):
    policy: str
    desired: int | None = None  # None: the policy abstains
    reason: str
    metric: float | None = None
    failed: bool = False


class DecisionView(WireModel):
    """The scaling loop's latest evaluation of the service (changed the count or not)."""

    desired: int
    current: int
    reason: str
    policy: str | None = None
    metric_value: float | None = None
    votes: list[VoteView] = Field(default_factory=list)


class ScheduledActionView(ScheduledAction):
    next_fire_time: datetime | None = None  # UTC; None: no further firing
    last_fired_at: datetime | None = None


class ScalingDescription(WireModel):
    scalable_target: ScalableTarget
    policies: list[ScalingPolicy] = Field(default_factory=list)
    scheduled_actions: list[ScheduledActionView] = Field(default_factory=list)
    metrics: dict[str, MetricStatusView] = Field(default_factory=dict)  # by policy name
    last_decision: DecisionView | None = None
    desired_count: int = 0
    running_count: int = 0
    pending_count: int = 0
    scaling_loop: LoopRole = LoopRole.DISABLED


class ScalableTargetList(WireModel):
    scalable_targets: list[ScalableTarget]


class ScalingActivityList(WireModel):
    activities: list[ScalingActivity]
