"""Task scale-in protection, the endpoint a task calls from inside (ECS's agent endpoint
``$ECS_AGENT_URI/task-protection/v1/state``): ``PUT``/``GET
$HATOBA_AGENT_URI/v1/task-protection/$HATOBA_TASK_ID``.

A task authenticates with ``Authorization: Bearer $HATOBA_TASK_TOKEN`` (its own token, good
for its own id only); an API token works too (an operator to change, a viewer to read, its
scopes reaching the task's family), so people and scripts can protect a task from outside.
The body takes ECS's spelling or hatoba's: ``{"ProtectionEnabled": true,
"ExpiresInMinutes": 60}`` or ``{"protectionEnabled": true, "expiresInMinutes": 60}``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from hatoba.api import auth
from hatoba.api.errors import json_path
from hatoba.api.services import ApiServices
from hatoba.controllers.scaling import Scaling
from hatoba.model.access import Principal, Role
from hatoba.model.base import WireModel
from hatoba.model.errors import FieldError, HatobaError, NotFound, ValidationFailed
from hatoba.model.scaling import TaskProtection

router = APIRouter(prefix="/v1", tags=["task protection"])


class ProtectionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    protection_enabled: bool = Field(
        validation_alias=AliasChoices("protectionEnabled", "ProtectionEnabled")
    )
    expires_in_minutes: int | None = Field(
        default=None, validation_alias=AliasChoices("expiresInMinutes", "ExpiresInMinutes")
    )


class ProtectionResponse(WireModel):
    protection: TaskProtection


async def services(request: Request) -> ApiServices:
    svc: ApiServices = request.app.state.services
    return svc


Svc = Annotated[ApiServices, Depends(services)]


def _scaling(svc: ApiServices) -> Scaling:
    if svc.scaling is None:
        raise HatobaError("task protection is not available on this control plane")
    return svc.scaling


async def _authorize(request: Request, svc: ApiServices, task_id: str, role: Role) -> str:
    """The task's full id, once the caller may act on it: the task itself (its token) or
    an API token with ``role`` reaching the task's family."""
    header = request.headers.get("authorization") or ""
    scheme, _, presented = header.partition(" ")
    presented = presented.strip() if scheme.lower() == "bearer" else ""
    if svc.task_tokens is not None and svc.task_tokens.verify(task_id, presented):
        # for the audit log: the task itself, able to reach nothing but its own protection
        request.state.principal = Principal(
            name=f"task:{task_id}", role=Role.VIEWER, scopes=[f"task:{task_id}"]
        )
        if await svc.store.get_task(task_id) is None:
            raise NotFound(f"task {task_id} not found")
        return task_id
    principal = await auth.authenticated(request)
    auth.check_role(principal, role)
    task = await svc.tasks.resolve(task_id)
    if principal.scopes:
        auth.check_scope(principal, f"family:{task.family}")
    return task.task_id


@router.put(
    "/task-protection/{task_id}",
    response_model=ProtectionResponse,
    response_model_exclude_none=True,
    summary="Protect a task from scale-in for expiresInMinutes (default 120, max 2880), "
    "or end its protection",
)
async def put_task_protection(
    svc: Svc, request: Request, task_id: str, raw: Annotated[dict[str, Any], Body()]
) -> ProtectionResponse:
    full_id = await _authorize(request, svc, task_id, Role.OPERATOR)  # before the body
    try:
        body = ProtectionBody.model_validate(raw)
    except ValidationError as exc:
        errors = [FieldError(json_path(tuple(e["loc"])), str(e["msg"])) for e in exc.errors()]
        raise ValidationFailed(errors, "task protection request") from None
    protection = await _scaling(svc).set_task_protection(
        full_id, body.protection_enabled, body.expires_in_minutes
    )
    return ProtectionResponse(protection=protection)


@router.get(
    "/task-protection/{task_id}",
    response_model=ProtectionResponse,
    response_model_exclude_none=True,
    summary="A task's scale-in protection",
)
async def get_task_protection(svc: Svc, request: Request, task_id: str) -> ProtectionResponse:
    full_id = await _authorize(request, svc, task_id, Role.VIEWER)
    return ProtectionResponse(protection=await _scaling(svc).get_task_protection(full_id))
