"""One error shape for every failure:
``{"error": {"code", "message", "errors": [{path, message}]}}``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from hatoba.model.errors import FieldError, HatobaError, ValidationFailed


def json_path(loc: tuple[Any, ...]) -> str:
    """pydantic's ("body", "overrides", "containerOverrides", 0, "cpu") ->
    ``overrides.containerOverrides[0].cpu``."""
    out = ""
    for part in loc:
        if part in ("body", "query", "path") and not out:
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def error_body(exc: HatobaError) -> dict[str, Any]:
    body: dict[str, Any] = {"code": exc.code, "message": str(exc)}
    if isinstance(exc, ValidationFailed):
        body["errors"] = [{"path": e.path, "message": e.message} for e in exc.errors]
    return {"error": body}


def install(app: FastAPI) -> None:
    @app.exception_handler(HatobaError)
    async def hatoba_error(_: Request, exc: HatobaError) -> JSONResponse:
        return JSONResponse(error_body(exc), status_code=exc.http_status)

    @app.exception_handler(RequestValidationError)
    async def request_invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        # Only each error's location and message: never pydantic's ``input`` (nor ``ctx``),
        # which echo what was sent, and a parameter's value may be a secret.
        errors = [
            FieldError(json_path(tuple(e.get("loc", ()))), str(e.get("msg", "invalid")))
            for e in exc.errors()
        ]
        failed = ValidationFailed(errors, subject="request")
        return JSONResponse(error_body(failed), status_code=failed.http_status)
