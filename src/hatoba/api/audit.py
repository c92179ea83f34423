"""Audit every mutating call (POST/PUT/PATCH/DELETE and websockets), allowed or refused.

Why pure ASGI and not ``BaseHTTPMiddleware``: it must not buffer or re-wrap streaming
responses. The entry is written when the response starts (before the client sees it, so a
client that reads the audit log next finds its own call); the principal is what the auth
dependency left in the scope's state, or "anonymous". Request bodies are never recorded:
they may hold secrets. An audit write failure is logged by ``Tokens.record``, not raised.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hatoba.controllers.tokens import Tokens
from hatoba.model.access import Principal

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
WEBSOCKET = "WEBSOCKET"


class AuditMiddleware:
    def __init__(self, app: ASGIApp, tokens: Tokens) -> None:
        self.app = app
        self.tokens = tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        method = WEBSOCKET if kind == "websocket" else str(scope.get("method", ""))
        if kind not in ("http", "websocket") or (kind == "http" and method not in MUTATING):
            await self.app(scope, receive, send)
            return
        state: dict[str, Any] = scope.setdefault("state", {})
        written = False

        async def write(status: int) -> None:
            nonlocal written
            if written:
                return
            written = True
            principal = state.get("principal")
            who = principal if isinstance(principal, Principal) else None
            client = scope.get("client")
            await self.tokens.record(
                principal=who.name if who else "anonymous",
                token_id=who.token_id if who else None,
                method=method,
                path=str(scope.get("path", "")),
                status=status,
                client=str(client[0]) if client else None,
            )

        async def audited_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                await write(int(message["status"]))
            elif message["type"] == "websocket.close":
                await write(int(message.get("code", 1000)))
            await send(message)

        try:
            await self.app(scope, receive, audited_send)
        finally:
            # A websocket the client closed, or an app that failed before responding.
            await write(101 if kind == "websocket" else 500)
