"""Who is calling, and may they: bearer tokens, roles and scopes.

Every route but /v1/health depends on ``authenticated`` (401 ``Unauthorized`` when the
token is missing, unknown, revoked or expired), which also leaves the principal on
``request.state.principal`` for the audit middleware. ``require(role)`` adds the role check
(403 ``Forbidden`` naming the role needed); ``check_scope`` the resource check for tokens
limited to some families or parameter paths.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated

from fastapi import Depends, Request, WebSocket

from hatoba.api.services import ApiServices
from hatoba.model.access import Principal, Role
from hatoba.model.errors import Forbidden, Unauthorized

UNAUTHORIZED = (
    "missing, unknown, revoked or expired bearer token (the root token file is in "
    "hatoba's data directory; the CLI reads it for you, or set HATOBA_TOKEN)"
)


def _presented(headers: Mapping[str, str]) -> str:
    value = headers.get("authorization") or ""
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


async def _principal(svc: ApiServices, headers: Mapping[str, str]) -> Principal:
    principal = await svc.tokens.authenticate(_presented(headers))
    if principal is None:
        raise Unauthorized(UNAUTHORIZED)
    return principal


async def authenticated(request: Request) -> Principal:
    principal = await _principal(request.app.state.services, request.headers)
    request.state.principal = principal
    return principal


def check_role(principal: Principal, role: Role) -> None:
    if not principal.may(role):
        raise Forbidden(
            f"this call needs the {role.value} role; token {principal.name!r} is "
            f"{principal.role.value}"
        )


def check_scope(principal: Principal, resource: str) -> None:
    if not principal.reaches(resource):
        raise Forbidden(
            f"token {principal.name!r} is scoped to {', '.join(principal.scopes)}; "
            f"it does not reach {resource}"
        )


def require(role: Role) -> Callable[[Principal], Awaitable[Principal]]:
    # ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in a worker thread.
    async def dependency(principal: Annotated[Principal, Depends(authenticated)]) -> Principal:
        check_role(principal, role)
        return principal

    dependency.__name__ = f"require_{role.value}"
    return dependency


Viewer = Annotated[Principal, Depends(require(Role.VIEWER))]
Operator = Annotated[Principal, Depends(require(Role.OPERATOR))]
Deployer = Annotated[Principal, Depends(require(Role.DEPLOYER))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]


async def websocket_principal(ws: WebSocket, role: Role) -> Principal:
    """The websocket's caller with at least ``role``; Unauthorized / Forbidden otherwise."""
    principal = await _principal(ws.app.state.services, ws.headers)
    ws.state.principal = principal
    check_role(principal, role)
    return principal
