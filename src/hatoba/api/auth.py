"""Bearer-token check for every endpoint except /v1/health."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from fastapi import Request, WebSocket

from hatoba.model.errors import Unauthorized


def _presented(headers: Mapping[str, str]) -> str:
    value = headers.get("authorization") or ""
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def check(request: Request) -> None:
    expected: str = request.app.state.services.token
    if not hmac.compare_digest(_presented(request.headers), expected):
        raise Unauthorized(
            "missing or wrong bearer token (the token file is in hatoba's data directory; "
            "the CLI reads it for you, or set HATOBA_TOKEN)"
        )


def websocket_allowed(ws: WebSocket) -> bool:
    expected: str = ws.app.state.services.token
    return hmac.compare_digest(_presented(ws.headers), expected)
