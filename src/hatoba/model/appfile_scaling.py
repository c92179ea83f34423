"""A service's ``scaling:`` block in the app file: its scalable target, policies and
scheduled actions, in Application Auto Scaling's names.

```yaml
services:
  worker:
    taskDefinition: worker
    scaling:
      minCapacity: 1
      maxCapacity: 6
      policies:
        - policyName: backlog
          policyType: TargetTrackingScaling
          targetTrackingConfiguration:
            metric: {sql: {url: "sqlite:///${HATOBA_APP_DIR}/app.db", query: "SELECT ..."}}
            targetValue: 20                     # AverageValue: 20 queued per task
            scaleInStabilizationSeconds: 30
      scheduledActions:
        - {scheduledActionName: nights, schedule: "cron(0 22 * * ? *)", maxCapacity: 2}
```

Checked here, with the file's lines: the shape and every field (the models the server
stores), unique names, bounds, the policy type against its configuration, schedules and
time zones. What only the server knows, the metric specs (``hatoba.scalers``) and step
intervals, it checks when apply asks it (``POST /v1/scaling/validate``) before any write;
its errors come back with their paths under ``services.NAME.scaling``.

With a ``scaling:`` block the autoscaler owns ``desiredCount``: it is the count at creation
(``minCapacity`` when not given) and never compared afterwards. With ``scheduledActions``
the actions own ``minCapacity`` and ``maxCapacity`` once the target exists likewise (the
file's are the bounds at registration).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, Field, ValidationError

from hatoba.model.appfile import Loc, _pydantic_message, _unknown, split_path
from hatoba.model.base import WireModel
from hatoba.model.errors import ValidationFailed
from hatoba.model.scaling import (
    DEFAULT_SCALE_TO_ZERO_COOLDOWN,
    MAX_SECONDS,
    PolicyType,
    ScalableTarget,
    ScalingPolicy,
    ScheduledAction,
    SuspendedState,
)
from hatoba.model.schedule import parse_schedule
from hatoba.model.service import MAX_DESIRED_COUNT

if TYPE_CHECKING:
    from hatoba.model.appfile import _Loader

M = TypeVar("M", bound=BaseModel)

TARGET_KEYS = ("minCapacity", "maxCapacity", "suspendedState", "scaleToZeroCooldownSeconds")
SCALING_KEYS = (*TARGET_KEYS, "policies", "scheduledActions")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_STAMPS = ("service_name", "created_at", "updated_at")
_CONFIG = {
    PolicyType.TARGET_TRACKING: "targetTrackingConfiguration",
    PolicyType.STEP: "stepScalingConfiguration",
}


class _Target(WireModel):
    min_capacity: int = Field(ge=0, le=MAX_DESIRED_COUNT)
    max_capacity: int = Field(ge=0, le=MAX_DESIRED_COUNT)
    suspended_state: SuspendedState = Field(default_factory=SuspendedState)
    scale_to_zero_cooldown_seconds: int | None = Field(default=None, ge=0, le=MAX_SECONDS)


@dataclass(frozen=True)
class ScalingDecl:
    """What the file says of a service's autoscaling, as the API's bodies (camelCase)."""

    target: dict[str, Any]  # RegisterScalableTarget: every field, defaults spelled out
    policies: dict[str, ScalingPolicy] = field(default_factory=dict)  # by name, file order
    scheduled_actions: dict[str, ScheduledAction] = field(default_factory=dict)
    block: dict[str, Any] = field(default_factory=dict)  # as written: the server's check

    @property
    def min_capacity(self) -> int:
        value: int = self.target["minCapacity"]
        return value


def stamped(raw: dict[str, Any], service: str) -> dict[str, Any]:
    """A policy or action body with what the server fills in (so the model accepts it)."""
    return raw | {"serviceName": service, "createdAt": _EPOCH, "updatedAt": _EPOCH}


def policy_body(policy: ScalingPolicy) -> dict[str, Any]:
    """PutScalingPolicy's body (and the form compared by the diff: defaults spelled)."""
    return policy.model_dump(mode="json", by_alias=True, exclude=set(_STAMPS), exclude_none=True)


def action_body(action: ScheduledAction) -> dict[str, Any]:
    """PutScheduledAction's body (a described action's next and last fire times left out)."""
    body = action.model_dump(mode="json", by_alias=True, exclude=set(_STAMPS), exclude_none=True)
    return {k: v for k, v in body.items() if k not in ("nextFireTime", "lastFiredAt")}


def target_body(target: ScalableTarget | _Target) -> dict[str, Any]:
    keep = {"min_capacity", "max_capacity", "suspended_state", "scale_to_zero_cooldown_seconds"}
    return target.model_dump(mode="json", by_alias=True, include=keep, exclude_none=True)


def load_scaling(loader: _Loader, at: Loc, service: str, raw: Any) -> ScalingDecl | None:
    """The block of ``services.<service>.scaling`` at ``at``; problems go to the loader."""
    if not isinstance(raw, dict):
        loader.errors.append((at, "must be a mapping (minCapacity, maxCapacity, policies, ...)"))
        return None
    before = len(loader.errors)
    for key in raw:
        if key not in SCALING_KEYS:
            loader.errors.append(((*at, key), _unknown(key, SCALING_KEYS, "field")))
    target = _model(loader, at, _Target, {k: raw[k] for k in TARGET_KEYS if k in raw})
    if target is not None and target.min_capacity > target.max_capacity:
        message = f"is above maxCapacity {target.max_capacity}"
        loader.errors.append(((*at, "minCapacity"), message))
    policies = _policies(loader, at, service, _list(loader, at, raw, "policies"))
    actions = _actions(loader, at, service, _list(loader, at, raw, "scheduledActions"))
    if len(loader.errors) > before or target is None:
        return None
    body = target_body(target)
    body.setdefault("scaleToZeroCooldownSeconds", DEFAULT_SCALE_TO_ZERO_COOLDOWN)
    return ScalingDecl(body, policies, actions, dict(raw))


def _list(loader: _Loader, at: Loc, raw: dict[str, Any], key: str) -> list[Any]:
    value = raw.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        loader.errors.append(((*at, key), "must be a list"))
        return []
    return value


def _model(loader: _Loader, at: Loc, cls: type[M], body: dict[str, Any]) -> M | None:
    try:
        return cls.model_validate(body)
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err["loc"])
            if loc and loc[0] in ("serviceName", "createdAt", "updatedAt"):
                continue
            loader.errors.append(((*at, *loc), _pydantic_message(cls, err)))
        return None


def _named(
    loader: _Loader, at: Loc, item: Any, key: str, seen: dict[str, int], i: int
) -> str | None:
    if not isinstance(item, dict):
        loader.errors.append((at, f"must be a mapping ({key}, ...)"))
        return None
    name = item.get(key)
    if name is None:
        loader.errors.append(((*at, key), "field required"))
        return None
    if not isinstance(name, str):
        return None  # the model's own check reports it
    if name in seen:
        loader.errors.append(((*at, key), f"{name!r} is also item {seen[name]} of the list"))
        return None
    seen[name] = i
    return name


def _policies(loader: _Loader, at: Loc, service: str, items: list[Any]) -> dict[str, ScalingPolicy]:
    out: dict[str, ScalingPolicy] = {}
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        here: Loc = (*at, "policies", i)
        name = _named(loader, here, item, "policyName", seen, i)
        if not isinstance(item, dict):
            continue
        policy = _model(loader, here, ScalingPolicy, stamped(item, service))
        if policy is None or name is None:
            continue
        wanted = _CONFIG[policy.policy_type]
        given = [c for c in _CONFIG.values() if item.get(c) is not None]
        if wanted not in given:
            message = f"required with policyType {policy.policy_type.value}"
            loader.errors.append(((*here, wanted), message))
        for other in (c for c in given if c != wanted):
            message = f"not allowed with policyType {policy.policy_type.value}"
            loader.errors.append(((*here, other), message))
        config = item.get(wanted)
        if isinstance(config, dict) and not config.get("metric"):
            loader.errors.append(((*here, wanted, "metric"), "a metric spec is required"))
        out[name] = policy
    return out


def _actions(
    loader: _Loader, at: Loc, service: str, items: list[Any]
) -> dict[str, ScheduledAction]:
    out: dict[str, ScheduledAction] = {}
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        here: Loc = (*at, "scheduledActions", i)
        name = _named(loader, here, item, "scheduledActionName", seen, i)
        if not isinstance(item, dict):
            continue
        action = _model(loader, here, ScheduledAction, stamped(item, service))
        if action is None or name is None:
            continue
        try:
            parse_schedule(action.schedule, action.timezone, "schedule", timezone_path="timezone")
        except ValidationFailed as exc:
            loader.errors += [((*here, *split_path(e.path)), e.message) for e in exc.errors]
            continue
        lo, hi = action.min_capacity, action.max_capacity
        if lo is None and hi is None:
            loader.errors.append(((*here, "minCapacity"), "set minCapacity, maxCapacity or both"))
        elif lo is not None and hi is not None and lo > hi:
            loader.errors.append(((*here, "minCapacity"), f"is above maxCapacity {hi}"))
        else:
            out[name] = action
    return out
