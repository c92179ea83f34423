"""``hatoba exec`` over a WebSocket.

Protocol: the client's first message is JSON text ``{"container", "argv", "tty", "rows",
"cols"}``. Then binary frames carry a channel byte and data: 0 = stdin (client -> server),
1 = stdout, 2 = stderr (server -> client). Text frames carry control JSON: from the client
``{"resize": [rows, cols]}`` or ``{"stdinClosed": true}``; from the server
``{"exit": code}`` (last message) or ``{"error": {...}}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from hatoba.api import auth
from hatoba.api.errors import error_body
from hatoba.api.services import ApiServices
from hatoba.drivers.protocol import ExecProcess, ExecSpec
from hatoba.model.access import Role
from hatoba.model.errors import (
    FieldError,
    Forbidden,
    HatobaError,
    Unauthorized,
    ValidationFailed,
)

router = APIRouter(prefix="/v1")


def _parse_start(raw: str) -> tuple[str | None, list[str], bool, int, int]:
    try:
        msg: dict[str, Any] = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValidationFailed(
            [FieldError("", f"not JSON: {exc}")], subject="exec request"
        ) from exc
    argv = msg.get("argv")
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise ValidationFailed(
            [FieldError("argv", "must be a non-empty list of strings")], subject="exec request"
        )
    container = msg.get("container")
    return (
        container if isinstance(container, str) else None,
        argv,
        bool(msg.get("tty", False)),
        int(msg.get("rows", 24)),
        int(msg.get("cols", 80)),
    )


@router.websocket("/tasks/{ref}/exec")
async def exec_in_task(ws: WebSocket, ref: str) -> None:
    await ws.accept()
    svc: ApiServices = ws.app.state.services
    try:
        principal = await auth.websocket_principal(ws, Role.OPERATOR)
        if principal.scopes:
            auth.check_scope(principal, f"family:{(await svc.tasks.resolve(ref)).family}")
    except (Unauthorized, Forbidden) as exc:
        await ws.send_text(json.dumps(error_body(exc)))
        await ws.close(code=4401 if isinstance(exc, Unauthorized) else 4403)
        return
    except HatobaError as exc:  # NotFound while checking the scope
        await ws.send_text(json.dumps(error_body(exc)))
        await ws.close(code=4400)
        return
    try:
        container, argv, tty, rows, cols = _parse_start(await ws.receive_text())
        task = await svc.tasks.resolve(ref)
        proc = await svc.agent.exec(task.task_id, container, ExecSpec(argv=argv, tty=tty))
    except HatobaError as exc:
        await ws.send_text(json.dumps(error_body(exc)))
        await ws.close(code=4400)
        return
    if tty:
        await proc.resize(rows, cols)
    pump = asyncio.create_task(_pump_input(ws, proc))
    try:
        while (chunk := await proc.read_output()) is not None:
            stream, data = chunk
            await ws.send_bytes(bytes([stream]) + data)
        code = await proc.wait()
        await ws.send_text(json.dumps({"exit": code}))
        await ws.close()
    except WebSocketDisconnect:
        await proc.kill()
    finally:
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await pump


async def _pump_input(ws: WebSocket, proc: ExecProcess) -> None:
    try:
        while True:
            msg = await ws.receive()
            if msg.get("type") == "websocket.disconnect":
                await proc.kill()
                return
            data = msg.get("bytes")
            if data:
                if data[0] == 0:
                    await proc.write_stdin(data[1:])
                continue
            text = msg.get("text")
            if text:
                ctl = json.loads(text)
                if "resize" in ctl:
                    rows, cols = ctl["resize"]
                    await proc.resize(int(rows), int(cols))
                if ctl.get("stdinClosed"):
                    await proc.close_stdin()
    except (WebSocketDisconnect, RuntimeError):
        return
