"""Errors that carry the JSON path of each bad field, so users see exactly what to fix."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FieldError:
    """One bad field: ``path`` is a JSON path like ``containerDefinitions[0].memory``."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class HatobaError(Exception):
    """Base for errors shown to users. ``code`` is stable and machine-readable."""

    code = "HatobaError"
    http_status = 400


@dataclass
class ValidationFailed(HatobaError):
    """Input was rejected; nothing was applied. Lists every bad field."""

    errors: list[FieldError] = field(default_factory=list)
    subject: str = "input"

    code = "ValidationFailed"
    http_status = 422

    def __str__(self) -> str:
        lines = [f"invalid {self.subject}:"] + [f"  - {e}" for e in self.errors]
        return "\n".join(lines)


class NotFound(HatobaError):
    code = "NotFound"
    http_status = 404


class Conflict(HatobaError):
    """A compare-and-set write lost a race, or the object is in the wrong state."""

    code = "Conflict"
    http_status = 409


class Unauthorized(HatobaError):
    code = "Unauthorized"
    http_status = 401


class Forbidden(HatobaError):
    """Authenticated, but the role, scope or ``canDecrypt`` does not allow this call."""

    code = "Forbidden"
    http_status = 403
