"""REST endpoints for services (ECS's CreateService, UpdateService, DeleteService,
DescribeServices, ListServices, plus a service's events and tasks).

Roles: reads need a viewer; scaling (``POST .../scale``, or a PATCH that only sets
``desiredCount``) an operator; anything else that changes a service a deployer. A token with
scopes must reach ``service:NAME`` for any change, and also ``family:FAMILY`` when the
change picks a task definition (the service will run tasks of that family).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import Field

from hatoba.api import auth
from hatoba.api.schemas import TaskList
from hatoba.api.services import ApiServices
from hatoba.controllers.refs import parse_taskdef_ref
from hatoba.model.access import Principal, Role
from hatoba.model.base import WireModel
from hatoba.model.errors import ValidationFailed
from hatoba.model.service import (
    MAX_DESIRED_COUNT,
    MAX_EVENTS_KEPT,
    Service,
    ServiceEvent,
    ServiceSpec,
    ServiceUpdate,
)

router = APIRouter(
    prefix="/v1", dependencies=[Depends(auth.require(Role.VIEWER))], tags=["services"]
)

# controller bookkeeping, not for callers
HIDDEN = {"tasks_seen_until", "tasks_seen_ids"}


async def services(request: Request) -> ApiServices:
    svc: ApiServices = request.app.state.services
    return svc


Svc = Annotated[ApiServices, Depends(services)]


class ServiceList(WireModel):
    services: list[Service]


class ServiceEventList(WireModel):
    events: list[ServiceEvent]


class ScaleBody(WireModel):
    desired_count: int = Field(ge=0, le=MAX_DESIRED_COUNT)


def _check_service_scope(
    principal: Principal, service_name: str, task_definition: str | None
) -> None:
    """A scoped token must reach the service and, when a task definition is chosen, its
    family. An unparsable reference is left for the controller to report (422)."""
    if not principal.scopes:
        return
    auth.check_scope(principal, f"service:{service_name}")
    if task_definition is None:
        return
    try:
        family = parse_taskdef_ref(task_definition)[0]
    except ValidationFailed:
        return
    auth.check_scope(principal, f"family:{family}")


def _only_scales(update: ServiceUpdate) -> bool:
    """Whether the update changes nothing but ``desiredCount`` (an operator's call)."""
    given = update.model_dump(exclude_unset=True, exclude_none=True)
    if given.get("force_new_deployment") is False:
        del given["force_new_deployment"]
    return set(given) <= {"desired_count"}


@router.post(
    "/services",
    response_model=Service,
    response_model_exclude=HIDDEN,
    response_model_exclude_none=True,
    summary="CreateService: keep desiredCount tasks of a task definition running",
)
async def create_service(svc: Svc, principal: auth.Deployer, body: ServiceSpec) -> Service:
    _check_service_scope(principal, body.service_name, body.task_definition)
    await svc.services.create(body)
    return await svc.services.describe(body.service_name)


@router.get(
    "/services",
    response_model=ServiceList,
    response_model_exclude={"services": {"__all__": HIDDEN}},
    response_model_exclude_none=True,
)
async def list_services(svc: Svc) -> ServiceList:
    """Every service (DRAINING ones too, until their tasks have stopped), by name, with
    runningCount and pendingCount."""
    return ServiceList(services=await svc.services.list())


@router.get(
    "/services/{service_name}",
    response_model=Service,
    response_model_exclude=HIDDEN,
    response_model_exclude_none=True,
)
async def describe_service(svc: Svc, service_name: str) -> Service:
    """The service with its deployments, each counted from its tasks."""
    return await svc.services.describe(service_name)


@router.patch(
    "/services/{service_name}",
    response_model=Service,
    response_model_exclude=HIDDEN,
    response_model_exclude_none=True,
    summary="UpdateService: only the fields given change",
)
async def update_service(
    svc: Svc, principal: auth.Operator, service_name: str, body: ServiceUpdate
) -> Service:
    """A new ``taskDefinition`` (or ``forceNewDeployment``) starts a deployment. A body that
    sets only ``desiredCount`` needs the operator role; anything else the deployer role."""
    if not _only_scales(body):
        auth.check_role(principal, Role.DEPLOYER)
    _check_service_scope(principal, service_name, body.task_definition)
    await svc.services.update(service_name, body)
    return await svc.services.describe(service_name)


@router.post(
    "/services/{service_name}/scale",
    response_model=Service,
    response_model_exclude=HIDDEN,
    response_model_exclude_none=True,
)
async def scale_service(
    svc: Svc, principal: auth.Operator, service_name: str, body: ScaleBody
) -> Service:
    """Set desiredCount (a REPLICA service)."""
    _check_service_scope(principal, service_name, None)
    await svc.services.scale(service_name, body.desired_count)
    return await svc.services.describe(service_name)


@router.delete(
    "/services/{service_name}",
    response_model=Service,
    response_model_exclude=HIDDEN,
    response_model_exclude_none=True,
)
async def delete_service(
    svc: Svc, principal: auth.Deployer, service_name: str, force: bool = False
) -> Service:
    """DeleteService: a REPLICA service must be scaled to 0 first unless ``force``. It turns
    DRAINING, its tasks are stopped, then it is gone (GET answers 404)."""
    _check_service_scope(principal, service_name, None)
    return await svc.services.delete(service_name, force=force)


@router.get(
    "/services/{service_name}/events",
    response_model=ServiceEventList,
    response_model_exclude_none=True,
)
async def service_events(
    svc: Svc,
    service_name: str,
    limit: Annotated[int, Query(ge=1, le=MAX_EVENTS_KEPT)] = MAX_EVENTS_KEPT,
    after_id: Annotated[int | None, Query(alias="afterId", ge=0)] = None,
) -> ServiceEventList:
    """Newest first; with ``afterId`` only the events newer than that id (to follow)."""
    return ServiceEventList(
        events=await svc.services.events(service_name, limit=limit, after_id=after_id)
    )


@router.get(
    "/services/{service_name}/tasks", response_model=TaskList, response_model_exclude_none=True
)
async def service_tasks(
    svc: Svc, service_name: str, live_only: Annotated[bool, Query(alias="liveOnly")] = True
) -> TaskList:
    """The service's tasks not yet STOPPED; with ``liveOnly=false`` the stopped ones still
    kept as well."""
    return TaskList(tasks=await svc.services.tasks(service_name, live_only=live_only))
