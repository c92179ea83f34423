"""Who may do what: API tokens, roles, scopes and audit entries. Pure data and decisions.

Roles are cumulative: a viewer reads; an operator also runs, stops and scales; a deployer
also registers task definitions, updates services and approves deployments; an admin also
manages tokens and parameters. A token may be scoped to named resources (``family:reports``,
``service:web``, ``job:nightly``, with ``*`` wildcards): then its mutations reach only those.
Reading secret values needs ``canDecrypt`` on top of the role.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import re
import secrets
from datetime import datetime
from enum import StrEnum

from pydantic import Field, field_validator

from hatoba.model.base import WireModel

TOKEN_PREFIX = "hbt_"
SCOPE = re.compile(r"^(family|service|job|param):[A-Za-z0-9_*/.:-]{1,255}$")


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    DEPLOYER = "deployer"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def at_least(self, other: Role) -> bool:
        return self.rank >= other.rank


class Principal(WireModel):
    """The caller of one request, as authenticated."""

    name: str
    role: Role
    token_id: str | None = None  # None for the bootstrap token in the data directory
    scopes: list[str] = Field(default_factory=list)  # empty: everything
    can_decrypt: bool = False

    def may(self, role: Role) -> bool:
        return self.role.at_least(role)

    def reaches(self, resource: str) -> bool:
        """Whether a scoped token may act on ``resource`` (like ``family:reports``)."""
        if not self.scopes:
            return True
        return any(fnmatch.fnmatchcase(resource, pattern) for pattern in self.scopes)


class ApiToken(WireModel):
    """A stored token: only the hash of its secret is kept."""

    token_id: str
    name: str
    role: Role
    scopes: list[str] = Field(default_factory=list)
    can_decrypt: bool = False
    secret_hash: str
    created_at: datetime
    created_by: str
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, value: list[str]) -> list[str]:
        for s in value:
            if not SCOPE.match(s):
                raise ValueError(
                    f"{s!r} is not a scope like family:NAME, service:NAME, job:NAME or "
                    "param:/PATH/* (wildcards allowed)"
                )
        return value

    def principal(self) -> Principal:
        return Principal(
            name=self.name,
            role=self.role,
            token_id=self.token_id,
            scopes=list(self.scopes),
            can_decrypt=self.can_decrypt,
        )

    def usable(self, now: datetime) -> bool:
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or now < self.expires_at


class AuditEntry(WireModel):
    seq: int = 0
    at: datetime
    principal: str  # token name, or "anonymous"
    token_id: str | None = None
    method: str
    path: str
    status: int
    client: str | None = None  # address the call came from


def new_token_secret() -> tuple[str, str]:
    """(token id, full token to show once). The token is ``hbt_<id>_<secret>``."""
    token_id = secrets.token_hex(6)
    return token_id, f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"


def hash_token(token: str) -> str:
    """SHA-256 is enough for 256-bit random secrets (no dictionary to guess from)."""
    return hashlib.sha256(token.encode()).hexdigest()


def token_id_of(token: str) -> str | None:
    if not token.startswith(TOKEN_PREFIX):
        return None
    rest = token[len(TOKEN_PREFIX) :]
    token_id, sep, _ = rest.partition("_")
    return token_id if sep else None


def matches(token: str, secret_hash: str) -> bool:
    return hmac.compare_digest(hash_token(token), secret_hash)
