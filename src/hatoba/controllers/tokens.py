"""API tokens (create, list, revoke, authenticate) and the audit log.

Why only a hash is stored: a leaked database must not hand out working tokens. The secret
is returned once, at creation. The bootstrap token in the data directory stays the root
credential (admin, may decrypt), so a fresh install and the CLI work with no setup.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Sequence
from datetime import timedelta

from hatoba.controllers.audit_writer import AuditWriter
from hatoba.model.access import (
    SCOPE,
    ApiToken,
    AuditEntry,
    Principal,
    Role,
    hash_token,
    matches,
    new_token_secret,
    token_id_of,
)
from hatoba.model.clock import Clock
from hatoba.model.errors import FieldError, Forbidden, NotFound, ValidationFailed
from hatoba.store.protocol import Store

log = logging.getLogger("hatoba.tokens")

ROOT = "root"
MAX_AUDIT_PAGE = 1000


def _check_new(name: str, scopes: Sequence[str], expires_in_hours: float | None) -> None:
    errors: list[FieldError] = []
    if not 1 <= len(name) <= 128 or not name.isprintable():
        errors.append(FieldError("name", "must be 1-128 printable characters"))
    elif name == ROOT:
        errors.append(FieldError("name", "'root' is the bootstrap token's name"))
    for i, scope in enumerate(scopes):
        if not SCOPE.match(scope):
            errors.append(
                FieldError(
                    f"scopes[{i}]",
                    "must look like family:NAME, service:NAME, job:NAME or param:/PATH/* "
                    "(wildcards allowed)",
                )
            )
    if expires_in_hours is not None and not 0 < expires_in_hours <= 24 * 366 * 10:
        errors.append(FieldError("expiresInHours", "must be > 0 and at most ten years"))
    if errors:
        raise ValidationFailed(errors, "token")


class Tokens:
    def __init__(self, store: Store, clock: Clock, bootstrap_token: str) -> None:
        self._store = store
        self._clock = clock
        self._bootstrap = bootstrap_token
        self.audit_writer = AuditWriter(store)

    async def create(
        self,
        by: Principal,
        *,
        name: str,
        role: Role,
        scopes: Sequence[str] = (),
        can_decrypt: bool = False,
        expires_in_hours: float | None = None,
    ) -> tuple[ApiToken, str]:
        """(stored token, the secret to show once)."""
        if not by.may(Role.ADMIN):
            raise Forbidden("creating tokens needs the admin role")
        _check_new(name, scopes, expires_in_hours)
        token_id, secret = new_token_secret()
        now = self._clock.now()
        expires = None if expires_in_hours is None else now + timedelta(hours=expires_in_hours)
        token = ApiToken(
            token_id=token_id,
            name=name,
            role=role,
            scopes=list(scopes),
            can_decrypt=can_decrypt,
            secret_hash=hash_token(secret),
            created_at=now,
            created_by=by.name,
            expires_at=expires,
        )
        return await self._store.put_token(token), secret

    async def list_tokens(self) -> list[ApiToken]:
        return await self._store.list_tokens()

    async def revoke(self, token_id: str) -> ApiToken:
        if await self._store.get_token(token_id) is None:
            raise NotFound(f"token {token_id} not found")
        return await self._store.revoke_token(token_id, self._clock.now())

    async def authenticate(self, presented: str) -> Principal | None:
        """The principal a bearer token stands for; None when unknown, revoked or expired."""
        if not presented:
            return None
        if hmac.compare_digest(presented.encode(), self._bootstrap.encode()):
            return Principal(name=ROOT, role=Role.ADMIN, can_decrypt=True)
        token_id = token_id_of(presented)
        if token_id is None:
            return None
        token = await self._store.get_token(token_id)
        if token is None or not matches(presented, token.secret_hash):
            return None
        if not token.usable(self._clock.now()):
            return None
        return token.principal()

    # -- audit ---------------------------------------------------------------------------
    async def record(
        self,
        *,
        principal: str,
        token_id: str | None,
        method: str,
        path: str,
        status: int,
        client: str | None,
    ) -> None:
        """Queue an audit entry (never a request body: it may hold secrets). It is written
        off the request path by ``audit_writer``; a failure is logged, never raised."""
        self.audit_writer.add(
            AuditEntry(
                at=self._clock.now(),
                principal=principal,
                token_id=token_id,
                method=method,
                path=path,
                status=status,
                client=client,
            )
        )

    async def audit_log(self, limit: int = 100, before_seq: int | None = None) -> list[AuditEntry]:
        await self.audit_writer.drain()  # a reader sees every call made before it
        return await self._store.list_audit(limit=min(limit, MAX_AUDIT_PAGE), before_seq=before_seq)
