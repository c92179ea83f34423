"""Errors the client raises, so callers (the CLI) can show them without a traceback."""

from __future__ import annotations

from typing import Any

from hatoba.model.errors import FieldError


class ClientError(Exception):
    """Base for everything ``hatoba.client`` raises on purpose."""


class ServerUnavailable(ClientError):
    """Nothing answered at the server's address (refused, reset, or timed out connecting)."""


class ApiError(ClientError):
    """The server answered with its error shape ``{"error": {code, message, errors}}``.

    ``errors`` carries each bad field's JSON path, so callers can point at what to fix.
    """

    def __init__(
        self, status: int, code: str, message: str, errors: list[FieldError] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.errors = list(errors or [])

    def __str__(self) -> str:
        # The server's ValidationFailed message already lists its fields; do not repeat them.
        lines = [self.message]
        lines += [f"  - {e}" for e in self.errors if str(e) not in self.message]
        return "\n".join(lines)

    @classmethod
    def from_body(cls, status: int, body: Any, fallback: str) -> ApiError:
        """Build from a decoded error body; anything unexpected keeps ``fallback`` as text."""
        err = body.get("error") if isinstance(body, dict) else None
        if not isinstance(err, dict):
            return cls(status, f"HTTP{status}", fallback or f"HTTP {status}")
        fields = [
            FieldError(str(e.get("path", "")), str(e.get("message", "")))
            for e in err.get("errors") or []
            if isinstance(e, dict)
        ]
        return cls(
            status,
            str(err.get("code", f"HTTP{status}")),
            str(err.get("message", fallback)),
            fields,
        )
