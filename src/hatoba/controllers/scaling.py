"""Autoscaling's declared side: RegisterScalableTarget, PutScalingPolicy,
PutScheduledAction (and their deletes), describe, activities, and task scale-in protection.

Requests are camelCase bodies (as the API and app file hand them over), validated whole:
every problem is reported with its JSON path and nothing is stored unless all is well. The
scaling loop (``scaling_loop``) acts on what is stored here.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from pydantic import Field, ValidationError

from hatoba.controllers.scaling_math import step_errors
from hatoba.controllers.services import Services
from hatoba.controllers.task_updates import mutate_task
from hatoba.model.base import WireModel
from hatoba.model.clock import Clock
from hatoba.model.errors import Conflict, FieldError, NotFound, ValidationFailed
from hatoba.model.scaling import (
    DEFAULT_PROTECTION_MINUTES,
    MAX_PROTECTION_MINUTES,
    MAX_SECONDS,
    PolicyType,
    ScalableTarget,
    ScalingActivity,
    ScalingPolicy,
    ScheduledAction,
    SuspendedState,
    TaskProtection,
)
from hatoba.model.schedule import parse_schedule
from hatoba.model.service import MAX_DESIRED_COUNT, SchedulingStrategy
from hatoba.model.task import DesiredStatus, LastStatus, Task
from hatoba.scalers import parse_metric_spec
from hatoba.store.protocol import Store

CAS_ATTEMPTS = 20


@dataclass(frozen=True)
class MetricStatus:
    """A policy's metric as the scaling loop last saw it."""

    value: float | None = None
    at: datetime | None = None
    error: str | None = None
    kind: str | None = None


class MetricsView(Protocol):
    """What describe asks the scaling loop (only the leader polls metrics)."""

    def metric_status(self, service: str) -> dict[str, MetricStatus]: ...


@dataclass(frozen=True)
class ScalingDescription:
    target: ScalableTarget
    policies: list[ScalingPolicy]
    scheduled_actions: list[ScheduledAction]
    # policy name -> its metric now; empty when this control plane does not run the loop
    metrics: dict[str, MetricStatus] = field(default_factory=dict)


class _TargetRequest(WireModel):
    min_capacity: int | None = Field(default=None, ge=0, le=MAX_DESIRED_COUNT)
    max_capacity: int | None = Field(default=None, ge=0, le=MAX_DESIRED_COUNT)
    suspended_state: SuspendedState | None = None
    scale_to_zero_cooldown_seconds: int | None = Field(default=None, ge=0, le=MAX_SECONDS)


def field_errors(exc: ValidationError, root: str = "") -> list[FieldError]:
    """pydantic's errors as JSON paths (``stepScalingConfiguration.stepAdjustments[0]...``)."""
    out = []
    for e in exc.errors():
        path = root
        for part in e["loc"]:
            if isinstance(part, int):
                path += f"[{part}]"
            else:
                path += ("." if path else "") + str(part)
        message = str(e["msg"])
        for prefix in ("Value error, ", "Assertion failed, "):
            message = message.removeprefix(prefix)
        if e["type"] == "extra_forbidden":
            message = "unknown field"
        out.append(FieldError(path, message))
    return out


def _body(body: Mapping[str, Any], subject: str) -> dict[str, Any]:
    if not isinstance(body, Mapping):
        raise ValidationFailed([FieldError("", "must be a JSON object")], subject)
    return dict(body)


def policy_errors(policy: ScalingPolicy) -> list[FieldError]:
    """What the model cannot check alone: the configuration matching the type, the metric
    spec (``hatoba.scalers``), and the step adjustments' intervals."""
    errors: list[FieldError] = []
    tt, step = policy.target_tracking_configuration, policy.step_scaling_configuration
    if policy.policy_type == PolicyType.TARGET_TRACKING:
        wanted, other = "targetTrackingConfiguration", "stepScalingConfiguration"
        cfg: Any = tt
        if step is not None:
            errors.append(FieldError(other, f"not allowed with policyType {policy.policy_type}"))
    else:
        wanted, other = "stepScalingConfiguration", "targetTrackingConfiguration"
        cfg = step
        if tt is not None:
            errors.append(FieldError(other, f"not allowed with policyType {policy.policy_type}"))
    if cfg is None:
        errors.append(FieldError(wanted, f"required with policyType {policy.policy_type}"))
        return errors
    try:
        parse_metric_spec(cfg.metric, path=f"{wanted}.metric")
    except ValidationFailed as exc:
        errors.extend(exc.errors)
    if step is not None and cfg is step:
        errors.extend(step_errors(step, wanted))
    return errors


def scheduled_action_errors(action: ScheduledAction) -> list[FieldError]:
    """What the model cannot check alone: the schedule and time zone, the bounds given,
    the start and end times."""
    errors: list[FieldError] = []
    try:
        parse_schedule(action.schedule, action.timezone, "schedule", timezone_path="timezone")
    except ValidationFailed as exc:
        errors.extend(exc.errors)
    lo, hi = action.min_capacity, action.max_capacity
    if lo is None and hi is None:
        errors.append(FieldError("minCapacity", "set minCapacity, maxCapacity or both"))
    elif lo is not None and hi is not None and lo > hi:
        errors.append(FieldError("minCapacity", f"is above maxCapacity {hi}"))
    start, end = action.start_time, action.end_time
    for name, value in (("startTime", start), ("endTime", end)):
        if value is not None and value.tzinfo is None:
            errors.append(FieldError(name, "needs a time zone offset (e.g. Z)"))
    if not errors and start is not None and end is not None and end <= start:
        errors.append(FieldError("endTime", "must be after startTime"))
    return errors


class Scaling:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        services: Services,
        *,
        metrics: MetricsView | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._services = services
        self.metrics = metrics  # set by the composition root once the loop exists

    # -- scalable targets --------------------------------------------------------------
    async def register_target(self, service_name: str, body: Mapping[str, Any]) -> ScalableTarget:
        """RegisterScalableTarget: create (``minCapacity`` and ``maxCapacity`` required) or
        update the fields given. The loop brings the count within the bounds."""
        subject = "RegisterScalableTarget request"
        try:
            req = _TargetRequest.model_validate(_body(body, subject))
        except ValidationError as exc:
            raise ValidationFailed(field_errors(exc), subject) from None
        service = await self._services.get(service_name)
        errors: list[FieldError] = []
        if service.scheduling_strategy == SchedulingStrategy.DAEMON:
            errors.append(
                FieldError(
                    "serviceName", "a DAEMON service runs one task per node; it cannot scale"
                )
            )
        for _ in range(CAS_ATTEMPTS):
            current = await self._store.get_scalable_target(service_name)
            now = self._clock.now()
            if current is None:
                for name, value in (
                    ("minCapacity", req.min_capacity),
                    ("maxCapacity", req.max_capacity),
                ):
                    if value is None:
                        errors.append(FieldError(name, "required to register a scalable target"))
                if errors:
                    raise ValidationFailed(errors, subject)
                # the bounds come with the updates below (checked there, not by the model)
                target = ScalableTarget(
                    service_name=service_name,
                    min_capacity=0,
                    max_capacity=0,
                    created_at=now,
                    updated_at=now,
                )
            else:
                target = current.model_copy(deep=True)
            updates = req.model_dump(exclude_none=True)
            if "suspended_state" in updates:
                updates["suspended_state"] = req.suspended_state
            target = target.model_copy(update=updates | {"updated_at": now})
            if target.min_capacity > target.max_capacity:
                errors.append(
                    FieldError(
                        "minCapacity" if req.min_capacity is not None else "maxCapacity",
                        f"minCapacity {target.min_capacity} is above maxCapacity "
                        f"{target.max_capacity}",
                    )
                )
            if errors:
                raise ValidationFailed(errors, subject)
            if current is not None and target.model_dump(
                exclude={"updated_at"}
            ) == current.model_dump(exclude={"updated_at"}):
                return current
            try:
                return await self._store.put_scalable_target(target)
            except (Conflict, NotFound):
                continue
        raise Conflict(f"the scalable target of {service_name} kept changing; try again")

    async def get_target(self, service_name: str) -> ScalableTarget:
        target = await self._store.get_scalable_target(service_name)
        if target is None:
            raise NotFound(f"service {service_name} has no scalable target")
        return target

    async def deregister_target(self, service_name: str) -> None:
        """The target with its policies and scheduled actions; the count stays as it is."""
        try:
            await self._store.delete_scalable_target(service_name)
        except NotFound:
            raise NotFound(f"service {service_name} has no scalable target") from None

    async def list_targets(self) -> builtins.list[ScalableTarget]:
        return await self._store.list_scalable_targets()

    # -- policies ----------------------------------------------------------------------
    async def put_policy(self, service_name: str, body: Mapping[str, Any]) -> ScalingPolicy:
        """PutScalingPolicy: create or replace the policy named ``policyName``."""
        subject = "PutScalingPolicy request"
        raw = _body(body, subject)
        await self.get_target(service_name)
        now = self._clock.now()
        existing = {p.policy_name: p for p in await self._store.list_scaling_policies(service_name)}
        old = existing.get(str(raw.get("policyName", "")))
        full = raw | {
            "serviceName": service_name,
            "createdAt": old.created_at if old else now,
            "updatedAt": now,
        }
        try:
            policy = ScalingPolicy.model_validate(full)
        except ValidationError as exc:
            raise ValidationFailed(field_errors(exc), subject) from None
        errors = policy_errors(policy)
        if errors:
            raise ValidationFailed(errors, subject)
        try:
            return await self._store.put_scaling_policy(policy)
        except NotFound:
            raise NotFound(f"service {service_name} has no scalable target") from None

    async def delete_policy(self, service_name: str, policy_name: str) -> None:
        await self._store.delete_scaling_policy(service_name, policy_name)

    # -- scheduled actions -------------------------------------------------------------
    async def put_scheduled_action(
        self, service_name: str, body: Mapping[str, Any]
    ) -> ScheduledAction:
        """PutScheduledAction: at each time ``schedule`` fires (in ``timezone``), set the
        target's ``minCapacity`` and/or ``maxCapacity``."""
        subject = "PutScheduledAction request"
        raw = _body(body, subject)
        await self.get_target(service_name)
        now = self._clock.now()
        existing = {
            a.scheduled_action_name: a
            for a in await self._store.list_scheduled_actions(service_name)
        }
        old = existing.get(str(raw.get("scheduledActionName", "")))
        full = raw | {
            "serviceName": service_name,
            "createdAt": old.created_at if old else now,
            "updatedAt": now,
        }
        try:
            action = ScheduledAction.model_validate(full)
        except ValidationError as exc:
            raise ValidationFailed(field_errors(exc), subject) from None
        errors = scheduled_action_errors(action)
        if errors:
            raise ValidationFailed(errors, subject)
        try:
            return await self._store.put_scheduled_action(action)
        except NotFound:
            raise NotFound(f"service {service_name} has no scalable target") from None

    async def delete_scheduled_action(self, service_name: str, name: str) -> None:
        await self._store.delete_scheduled_action(service_name, name)

    # -- reading -----------------------------------------------------------------------
    async def describe(self, service_name: str) -> ScalingDescription:
        target = await self.get_target(service_name)
        policies = await self._store.list_scaling_policies(service_name)
        actions = await self._store.list_scheduled_actions(service_name)
        metrics = {} if self.metrics is None else self.metrics.metric_status(service_name)
        return ScalingDescription(target, policies, actions, metrics)

    async def activities(
        self, service_name: str, limit: int = 50
    ) -> builtins.list[ScalingActivity]:
        """Newest first."""
        await self._services.get(service_name)
        return await self._store.list_scaling_activities(service_name, limit=limit)

    # -- task scale-in protection ------------------------------------------------------
    async def set_task_protection(
        self, task_id: str, enabled: bool, expires_in_minutes: int | None = None
    ) -> TaskProtection:
        """ECS's UpdateTaskProtection: protect a live task from scale-in for
        ``expiresInMinutes`` (default 120, at most 2880), or end its protection."""
        minutes = DEFAULT_PROTECTION_MINUTES if expires_in_minutes is None else expires_in_minutes
        if isinstance(minutes, bool) or not isinstance(minutes, int):
            raise ValidationFailed(
                [FieldError("expiresInMinutes", "must be a whole number of minutes")],
                "task protection",
            )
        if not 1 <= minutes <= MAX_PROTECTION_MINUTES:
            raise ValidationFailed(
                [FieldError("expiresInMinutes", f"must be 1 to {MAX_PROTECTION_MINUTES}")],
                "task protection",
            )
        now = self._clock.now()
        until = now + timedelta(minutes=minutes) if enabled else None

        def change(t: Task) -> Task | None:
            if t.last_status == LastStatus.STOPPED or t.desired_status == DesiredStatus.STOPPED:
                raise Conflict(f"task {t.task_id} is stopping or stopped: nothing to protect")
            if t.protected_until == until:
                return None
            t.protected_until = until
            return t

        task = await mutate_task(self._store, task_id, change)
        return protection_of(task, now)

    async def get_task_protection(self, task_id: str) -> TaskProtection:
        task = await self._store.get_task(task_id)
        if task is None:
            raise NotFound(f"task {task_id} not found")
        return protection_of(task, self._clock.now())


def protection_of(task: Task, now: datetime) -> TaskProtection:
    until = task.protected_until
    active = until is not None and until > now
    return TaskProtection(
        task_id=task.task_id, protection_enabled=active, expiration_date=until if active else None
    )
