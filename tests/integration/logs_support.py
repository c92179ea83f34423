"""Helpers for the log integration tests: the log API over ASGI, task definitions."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx

from hatoba.api.app import create_app
from hatoba.api.services import ApiServices


async def api_logs(cp: ApiServices, target: str, **params: Any) -> list[dict[str, Any]]:
    """``GET /v1/logs`` (it must end: not following, or following a task that stops)."""
    query = {"target": target}
    for key, value in params.items():
        query[key] = str(value).lower() if isinstance(value, bool) else str(value)
    transport = httpx.ASGITransport(app=create_app(cp))
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://hatoba",
        headers={"Authorization": f"Bearer {cp.token}"},
        timeout=60,
    ) as http:
        r = await http.get("/v1/logs", params=query)
    assert r.status_code == 200, r.text
    return [json.loads(line) for line in r.text.splitlines()]


def data(obj: dict[str, Any]) -> bytes:
    if "messageBase64" in obj:
        return base64.b64decode(obj["messageBase64"])
    return str(obj["message"]).encode()
