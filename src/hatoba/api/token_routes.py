"""REST endpoints for API tokens and the audit log (admin only, reads included: token
names, scopes and who-did-what are not for every viewer)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import Field

from hatoba.api import auth
from hatoba.api.services import ApiServices
from hatoba.model.access import ApiToken, AuditEntry, Role
from hatoba.model.base import WireModel

router = APIRouter(prefix="/v1", dependencies=[Depends(auth.require(Role.ADMIN))], tags=["access"])


async def services(request: Request) -> ApiServices:
    svc: ApiServices = request.app.state.services
    return svc


Svc = Annotated[ApiServices, Depends(services)]


class TokenView(WireModel):
    """A token as shown: everything but the hash of its secret."""

    token_id: str
    name: str
    role: Role
    scopes: list[str]
    can_decrypt: bool
    created_at: datetime
    created_by: str
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    @classmethod
    def of(cls, token: ApiToken) -> TokenView:
        return cls.model_validate(token.model_dump(exclude={"secret_hash"}))


class CreateTokenBody(WireModel):
    name: str
    role: Role
    scopes: list[str] = Field(default_factory=list)
    can_decrypt: bool = False
    expires_in_hours: float | None = None


class CreatedToken(WireModel):
    token: TokenView
    secret: str  # shown once; only its hash is stored


class TokenList(WireModel):
    tokens: list[TokenView]


class AuditList(WireModel):
    entries: list[AuditEntry]


@router.post("/tokens", response_model=CreatedToken, status_code=201)
async def create_token(svc: Svc, principal: auth.Admin, body: CreateTokenBody) -> CreatedToken:
    token, secret = await svc.tokens.create(
        principal,
        name=body.name,
        role=body.role,
        scopes=body.scopes,
        can_decrypt=body.can_decrypt,
        expires_in_hours=body.expires_in_hours,
    )
    return CreatedToken(token=TokenView.of(token), secret=secret)


@router.get("/tokens", response_model=TokenList)
async def list_tokens(svc: Svc) -> TokenList:
    return TokenList(tokens=[TokenView.of(t) for t in await svc.tokens.list_tokens()])


@router.delete("/tokens/{token_id}", response_model=TokenView)
async def revoke_token(svc: Svc, token_id: str) -> TokenView:
    return TokenView.of(await svc.tokens.revoke(token_id))


@router.get("/audit", response_model=AuditList)
async def audit_log(
    svc: Svc,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before_seq: Annotated[int | None, Query(alias="beforeSeq")] = None,
) -> AuditList:
    """Newest first (as the store returns them); page with ``beforeSeq``."""
    return AuditList(entries=await svc.tokens.audit_log(limit, before_seq))
