"""Checking a service's whole autoscaling declaration at once, without storing anything: the
app file's ``scaling:`` block (``POST /v1/scaling/validate``), so ``hatoba apply`` can
report every problem, by JSON path, before its first write.

```yaml
minCapacity: 1
maxCapacity: 6
suspendedState: {dynamicScalingInSuspended: false}   # optional, as RegisterScalableTarget
scaleToZeroCooldownSeconds: 300                       # optional
policies: [{policyName, policyType, targetTrackingConfiguration | stepScalingConfiguration}]
scheduledActions: [{scheduledActionName, schedule, timezone, minCapacity, maxCapacity, ...}]
```

The checks are the ones RegisterScalableTarget, PutScalingPolicy and PutScheduledAction
make (metric specs by ``hatoba.scalers``, step intervals, schedules), plus unique names.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import Field, ValidationError

from hatoba.controllers.scaling import field_errors, policy_errors, scheduled_action_errors
from hatoba.model.base import WireModel
from hatoba.model.errors import FieldError, ValidationFailed
from hatoba.model.scaling import MAX_SECONDS, ScalingPolicy, ScheduledAction, SuspendedState
from hatoba.model.service import MAX_DESIRED_COUNT

SUBJECT = "scaling declaration"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PLACEHOLDER = "validate"  # the service name the checks need; never stored


class ScalingBlock(WireModel):
    min_capacity: int = Field(ge=0, le=MAX_DESIRED_COUNT)
    max_capacity: int = Field(ge=0, le=MAX_DESIRED_COUNT)
    suspended_state: SuspendedState | None = None
    scale_to_zero_cooldown_seconds: int | None = Field(default=None, ge=0, le=MAX_SECONDS)
    policies: list[dict[str, Any]] = Field(default_factory=list)
    scheduled_actions: list[dict[str, Any]] = Field(default_factory=list)


def _under(root: str, errors: list[FieldError]) -> list[FieldError]:
    out = []
    for e in errors:
        sep = "" if not e.path or e.path.startswith("[") else "."
        out.append(FieldError(f"{root}{sep}{e.path}" if e.path else root, e.message))
    return out


def _stamped(raw: Mapping[str, Any]) -> dict[str, Any]:
    return dict(raw) | {"serviceName": _PLACEHOLDER, "createdAt": _EPOCH, "updatedAt": _EPOCH}


def _named(
    at: str, index: int, name: Any, key: str, seen: dict[str, int], errors: list[FieldError]
) -> None:
    if isinstance(name, str) and name in seen:
        errors.append(FieldError(f"{at}[{index}].{key}", f"{name!r} is also {at}[{seen[name]}]"))
    elif isinstance(name, str):
        seen[name] = index


def scaling_block_errors(body: Any) -> list[FieldError]:
    """Every problem of the declaration, by JSON path (empty: all is well)."""
    if not isinstance(body, Mapping):
        return [FieldError("", "must be a JSON object")]
    try:
        block = ScalingBlock.model_validate(dict(body))
    except ValidationError as exc:
        return field_errors(exc)
    errors: list[FieldError] = []
    if block.min_capacity > block.max_capacity:
        errors.append(FieldError("minCapacity", f"is above maxCapacity {block.max_capacity}"))
    seen: dict[str, int] = {}
    for i, raw in enumerate(block.policies):
        at = f"policies[{i}]"
        _named("policies", i, raw.get("policyName"), "policyName", seen, errors)
        try:
            policy = ScalingPolicy.model_validate(_stamped(raw))
        except ValidationError as exc:
            errors += field_errors(exc, at)
            continue
        errors += _under(at, policy_errors(policy))
    seen = {}
    for i, raw in enumerate(block.scheduled_actions):
        at = f"scheduledActions[{i}]"
        name = raw.get("scheduledActionName")
        _named("scheduledActions", i, name, "scheduledActionName", seen, errors)
        try:
            action = ScheduledAction.model_validate(_stamped(raw))
        except ValidationError as exc:
            errors += field_errors(exc, at)
            continue
        errors += _under(at, scheduled_action_errors(action))
    return errors


def check_scaling_block(body: Any) -> None:
    """``ValidationFailed`` listing every problem of the declaration."""
    errors = scaling_block_errors(body)
    if errors:
        raise ValidationFailed(errors, SUBJECT)
