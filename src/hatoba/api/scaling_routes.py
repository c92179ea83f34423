"""REST endpoints for service autoscaling, in Application Auto Scaling's shapes:
RegisterScalableTarget / DeregisterScalableTarget (``/v1/services/{name}/scaling``),
PutScalingPolicy / DeleteScalingPolicy, PutScheduledAction / DeleteScheduledAction,
DescribeScalingActivities, plus a whole description with the live metrics and the last
decision, and a dry-run check of a whole declaration (the app file's ``scaling:`` block).

Roles: reads need a viewer; every change a deployer (autoscaling decides counts on its own
from then on). A token with scopes must reach ``service:NAME``. Bodies are camelCase and
validated whole: every problem comes back by JSON path (422) and nothing is stored.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request

from hatoba.api import auth
from hatoba.api.services import ApiServices
from hatoba.controllers.scaling import MetricStatus, Scaling
from hatoba.controllers.scaling_validate import check_scaling_block
from hatoba.model.access import Principal, Role
from hatoba.model.base import WireModel, utcnow
from hatoba.model.errors import FieldError, HatobaError, NotFound, ValidationFailed
from hatoba.model.scaling import (
    MAX_ACTIVITIES_KEPT,
    ScalableTarget,
    ScalingPolicy,
    ScheduledAction,
)
from hatoba.model.scaling_view import (
    DecisionView,
    LoopRole,
    MetricStatusView,
    ScalableTargetList,
    ScalingActivityList,
    ScalingDescription,
    ScheduledActionView,
    VoteView,
)
from hatoba.model.schedule import parse_schedule

router = APIRouter(
    prefix="/v1", dependencies=[Depends(auth.require(Role.VIEWER))], tags=["autoscaling"]
)

RawBody = Annotated[dict[str, Any], Body()]


async def services(request: Request) -> ApiServices:
    svc: ApiServices = request.app.state.services
    return svc


Svc = Annotated[ApiServices, Depends(services)]


class Validated(WireModel):
    valid: bool = True


def _scaling(svc: ApiServices) -> Scaling:
    if svc.scaling is None:
        raise HatobaError("autoscaling is not available on this control plane")
    return svc.scaling


def _check_scope(principal: Principal, service_name: str) -> None:
    if principal.scopes:
        auth.check_scope(principal, f"service:{service_name}")


def _named(body: dict[str, Any], key: str, name: str, subject: str) -> dict[str, Any]:
    """The body with its name from the path; a different name in the body is an error."""
    given = body.get(key, name)
    if given != name:
        raise ValidationFailed(
            [FieldError(key, f"must be {name!r} (the name in the path) or left out")], subject
        )
    return body | {key: name}


# -- scalable targets ------------------------------------------------------------------------
@router.put(
    "/services/{service_name}/scaling",
    response_model=ScalableTarget,
    response_model_exclude_none=True,
    summary="RegisterScalableTarget: minCapacity and maxCapacity (required the first time), "
    "suspendedState, scaleToZeroCooldownSeconds; only the fields given change",
)
async def register_target(
    svc: Svc, principal: auth.Deployer, service_name: str, body: RawBody
) -> ScalableTarget:
    _check_scope(principal, service_name)
    return await _scaling(svc).register_target(service_name, body)


@router.get(
    "/services/{service_name}/scaling",
    response_model=ScalableTarget,
    response_model_exclude_none=True,
)
async def get_target(svc: Svc, service_name: str) -> ScalableTarget:
    """The service's scalable target (404 when it has none)."""
    return await _scaling(svc).get_target(service_name)


@router.delete(
    "/services/{service_name}/scaling",
    response_model=ScalableTarget,
    response_model_exclude_none=True,
    summary="DeregisterScalableTarget: with its policies and scheduled actions (the count "
    "stays as it is; activities are kept)",
)
async def deregister_target(
    svc: Svc, principal: auth.Deployer, service_name: str
) -> ScalableTarget:
    _check_scope(principal, service_name)
    scaling = _scaling(svc)
    target = await scaling.get_target(service_name)
    await scaling.deregister_target(service_name)
    return target


@router.get("/scaling", response_model=ScalableTargetList, response_model_exclude_none=True)
async def list_targets(svc: Svc) -> ScalableTargetList:
    """Every scalable target, by service name."""
    return ScalableTargetList(scalable_targets=await _scaling(svc).list_targets())


@router.post(
    "/scaling/validate",
    response_model=Validated,
    summary="Check a whole declaration (the app file's scaling: block) without storing it",
)
async def validate(principal: auth.Deployer, body: RawBody) -> Validated:
    """``{minCapacity, maxCapacity, suspendedState?, scaleToZeroCooldownSeconds?, policies:
    [...], scheduledActions: [...]}``: 200 when PutScalingPolicy and PutScheduledAction would
    take every part, else 422 naming each problem (``policies[0].targetTrackingConfiguration
    .metric.redisList.url``)."""
    check_scaling_block(body)
    return Validated()


# -- policies and scheduled actions ----------------------------------------------------------
@router.put(
    "/services/{service_name}/scaling/policies/{policy_name:path}",
    response_model=ScalingPolicy,
    response_model_exclude_none=True,
    summary="PutScalingPolicy: create or replace (TargetTrackingScaling or StepScaling)",
)
async def put_policy(
    svc: Svc, principal: auth.Deployer, service_name: str, policy_name: str, body: RawBody
) -> ScalingPolicy:
    _check_scope(principal, service_name)
    full = _named(body, "policyName", policy_name, "PutScalingPolicy request")
    return await _scaling(svc).put_policy(service_name, full)


@router.delete(
    "/services/{service_name}/scaling/policies/{policy_name:path}",
    response_model=ScalingPolicy,
    response_model_exclude_none=True,
)
async def delete_policy(
    svc: Svc, principal: auth.Deployer, service_name: str, policy_name: str
) -> ScalingPolicy:
    """DeleteScalingPolicy → the policy as it was."""
    _check_scope(principal, service_name)
    scaling = _scaling(svc)
    found = (await scaling.describe(service_name)).policies
    policy = next((p for p in found if p.policy_name == policy_name), None)
    if policy is None:
        raise NotFound(f"service {service_name} has no scaling policy {policy_name}")
    await scaling.delete_policy(service_name, policy_name)
    return policy


@router.put(
    "/services/{service_name}/scaling/scheduled-actions/{action_name:path}",
    response_model=ScheduledAction,
    response_model_exclude_none=True,
    summary="PutScheduledAction: at each time the schedule fires, set minCapacity/maxCapacity",
)
async def put_scheduled_action(
    svc: Svc, principal: auth.Deployer, service_name: str, action_name: str, body: RawBody
) -> ScheduledAction:
    _check_scope(principal, service_name)
    full = _named(body, "scheduledActionName", action_name, "PutScheduledAction request")
    return await _scaling(svc).put_scheduled_action(service_name, full)


@router.delete(
    "/services/{service_name}/scaling/scheduled-actions/{action_name:path}",
    response_model=ScheduledAction,
    response_model_exclude_none=True,
)
async def delete_scheduled_action(
    svc: Svc, principal: auth.Deployer, service_name: str, action_name: str
) -> ScheduledAction:
    """DeleteScheduledAction → the action as it was."""
    _check_scope(principal, service_name)
    scaling = _scaling(svc)
    found = (await scaling.describe(service_name)).scheduled_actions
    action = next((a for a in found if a.scheduled_action_name == action_name), None)
    if action is None:
        raise NotFound(f"service {service_name} has no scheduled action {action_name}")
    await scaling.delete_scheduled_action(service_name, action_name)
    return action


# -- reading ---------------------------------------------------------------------------------
@router.get(
    "/services/{service_name}/scaling/describe",
    response_model=ScalingDescription,
    response_model_exclude_none=True,
)
async def describe(svc: Svc, service_name: str) -> ScalingDescription:
    """The target, its policies (each metric as last read: value and time, or the error),
    scheduled actions (next fire time), the loop's last decision and the service's counts.
    Live metrics and decisions come from the control plane leading autoscaling
    (``scalingLoop: leader``)."""
    desc = await _scaling(svc).describe(service_name)
    service = await svc.services.describe(service_name)
    loop = svc.scaling_loop
    role = LoopRole.DISABLED
    decision = None
    if loop is not None:
        role = LoopRole.LEADER if loop.is_leader.is_set() else LoopRole.STANDBY
        last = loop.last_decision(service_name)
        if last is not None:
            decision = DecisionView(
                desired=last.desired,
                current=last.current,
                reason=last.reason,
                policy=last.policy,
                metric_value=last.metric_value,
                votes=[
                    VoteView(
                        policy=v.policy,
                        desired=v.desired,
                        reason=v.reason,
                        metric=v.metric,
                        failed=v.failed,
                    )
                    for v in last.votes
                ],
            )
    now = utcnow()
    fired = desc.target.scheduled_fired
    return ScalingDescription(
        scalable_target=desc.target,
        policies=desc.policies,
        scheduled_actions=[
            ScheduledActionView(
                **a.model_dump(),
                next_fire_time=next_fire_time(a, now),
                last_fired_at=fired.get(a.scheduled_action_name),
            )
            for a in desc.scheduled_actions
        ],
        metrics={name: _metric(m) for name, m in desc.metrics.items()},
        last_decision=decision,
        desired_count=service.desired_count,
        running_count=service.running_count,
        pending_count=service.pending_count,
        scaling_loop=role,
    )


def _metric(m: MetricStatus) -> MetricStatusView:
    return MetricStatusView(value=m.value, at=m.at, error=m.error, kind=m.kind)


def next_fire_time(action: ScheduledAction, now: datetime) -> datetime | None:
    """When the action fires next (within its startTime/endTime), or None."""
    try:
        schedule = parse_schedule(action.schedule, action.timezone)
    except ValidationFailed:
        return None
    after = now
    if action.start_time is not None and action.start_time > now:
        after = action.start_time - timedelta(microseconds=1)
    at = schedule.next_after(after)
    if at is None or (action.end_time is not None and at > action.end_time):
        return None
    return at


@router.get(
    "/services/{service_name}/scaling/activities",
    response_model=ScalingActivityList,
    response_model_exclude_none=True,
)
async def activities(
    svc: Svc,
    service_name: str,
    limit: Annotated[int, Query(ge=1, le=MAX_ACTIVITIES_KEPT)] = 50,
) -> ScalingActivityList:
    """Every change autoscaling made to the count (or bounds), newest first: time, metric
    value, policy, from → to, reason (and status, when the change failed)."""
    found = await _scaling(svc).activities(service_name, limit=limit)
    return ScalingActivityList(activities=found)
