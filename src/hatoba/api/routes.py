"""REST endpoints for task definitions and tasks (ECS's names, JSON in camelCase); the
task log streams are in ``log_routes``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request

from hatoba.api import auth
from hatoba.api.schemas import (
    FieldProblem,
    Health,
    RegisterResponse,
    RunFailure,
    RunTaskBody,
    RunTaskResponse,
    StopTaskBody,
    TaskDefinitionList,
    TaskList,
)
from hatoba.api.services import ApiServices
from hatoba.controllers.refs import parse_taskdef_ref
from hatoba.controllers.tasks import RunTaskRequest
from hatoba.model.access import Role
from hatoba.model.task import DesiredStatus, LastStatus, Task
from hatoba.model.taskdef import TaskDefinition, TaskDefinitionStatus

# Dependencies are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in its
# worker-thread pool, a thread hop (and a GIL hand-off) per dependency per request.
# Every route here needs a viewer at least; mutations ask for more (auth.Operator ...).

public = APIRouter(prefix="/v1")
router = APIRouter(prefix="/v1", dependencies=[Depends(auth.require(Role.VIEWER))])


async def services(request: Request) -> ApiServices:
    svc: ApiServices = request.app.state.services
    return svc


Svc = Annotated[ApiServices, Depends(services)]


@public.get("/health", response_model=Health, tags=["system"])
async def health(svc: Svc) -> Health:
    return Health(status="ok", version=svc.version, node_id=svc.agent.node_id)


# -- task definitions -------------------------------------------------------------------
@router.post(
    "/task-definitions",
    response_model=RegisterResponse,
    response_model_exclude_none=True,
    tags=["task definitions"],
    summary="Register a task definition (AWS ECS RegisterTaskDefinition JSON accepted as is)",
)
async def register_task_definition(
    svc: Svc, principal: auth.Deployer, body: Annotated[dict[str, Any], Body()]
) -> RegisterResponse:
    family = body.get("family")
    auth.check_scope(principal, f"family:{family if isinstance(family, str) else ''}")
    reg = await svc.task_definitions.register(body)
    return RegisterResponse(
        task_definition=reg.task_definition,
        warnings=[FieldProblem(path=w.path, message=w.message) for w in reg.warnings],
    )


@router.get(
    "/task-definitions",
    response_model=TaskDefinitionList,
    response_model_exclude_none=True,
    tags=["task definitions"],
)
async def list_task_definitions(
    svc: Svc, family: str | None = None, status: TaskDefinitionStatus | None = None
) -> TaskDefinitionList:
    return TaskDefinitionList(
        task_definitions=await svc.task_definitions.list_definitions(family, status)
    )


@router.get(
    "/task-definitions/{ref}",
    response_model=TaskDefinition,
    response_model_exclude_none=True,
    tags=["task definitions"],
)
async def describe_task_definition(svc: Svc, ref: str) -> TaskDefinition:
    return await svc.task_definitions.describe(ref)


@router.get("/task-definitions/{ref}/export", tags=["task definitions"])
async def export_task_definition(svc: Svc, ref: str) -> dict[str, Any]:
    return await svc.task_definitions.export(ref)


@router.delete(
    "/task-definitions/{ref}",
    response_model=TaskDefinition,
    response_model_exclude_none=True,
    tags=["task definitions"],
)
async def deregister_task_definition(
    svc: Svc, principal: auth.Deployer, ref: str
) -> TaskDefinition:
    auth.check_scope(principal, f"family:{parse_taskdef_ref(ref)[0]}")
    return await svc.task_definitions.deregister(ref)


# -- tasks ----------------------------------------------------------------------------------
@router.post(
    "/tasks", response_model=RunTaskResponse, response_model_exclude_none=True, tags=["tasks"]
)
async def run_task(svc: Svc, principal: auth.Operator, body: RunTaskBody) -> RunTaskResponse:
    auth.check_scope(principal, f"family:{parse_taskdef_ref(body.task_definition)[0]}")
    result = await svc.tasks.run(
        RunTaskRequest(
            task_definition=body.task_definition,
            count=body.count,
            overrides=body.overrides,
            started_by=body.started_by,
            group=body.group,
            timeout_seconds=body.timeout_seconds,
            allow_shrink=body.allow_shrink,
            placement_constraints=[c.model_dump() for c in body.placement_constraints],
            placement_strategy=[c.model_dump() for c in body.placement_strategy],
        )
    )
    return RunTaskResponse(
        tasks=result.tasks,
        failures=[RunFailure(arn=f.arn, reason=f.reason, detail=f.detail) for f in result.failures],
    )


@router.get("/tasks", response_model=TaskList, response_model_exclude_none=True, tags=["tasks"])
async def list_tasks(
    svc: Svc,
    family: str | None = None,
    desired_status: Annotated[DesiredStatus | None, Query(alias="desiredStatus")] = None,
    started_by: Annotated[str | None, Query(alias="startedBy")] = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 100,
) -> TaskList:
    return TaskList(
        tasks=await svc.tasks.list_tasks(
            family=family, desired_status=desired_status, started_by=started_by, limit=limit
        )
    )


@router.get("/tasks/{ref}", response_model=Task, response_model_exclude_none=True, tags=["tasks"])
async def describe_task(svc: Svc, ref: str) -> Task:
    return await svc.tasks.resolve(ref)


@router.post(
    "/tasks/{ref}/stop", response_model=Task, response_model_exclude_none=True, tags=["tasks"]
)
async def stop_task(
    svc: Svc, principal: auth.Operator, ref: str, body: StopTaskBody | None = None
) -> Task:
    if principal.scopes:
        auth.check_scope(principal, f"family:{(await svc.tasks.resolve(ref)).family}")
    return await svc.tasks.stop(ref, body.reason if body else None)


@router.get(
    "/tasks/{ref}/wait", response_model=Task, response_model_exclude_none=True, tags=["tasks"]
)
async def wait_task(
    svc: Svc,
    ref: str,
    status: LastStatus = LastStatus.STOPPED,
    timeout: Annotated[float, Query(ge=0, le=300)] = 30.0,
) -> Task:
    """Long poll: returns once lastStatus reached ``status`` (or passed it), or at timeout."""
    return await svc.tasks.wait_for(ref, status, timeout)
