"""The FastAPI application."""

from __future__ import annotations

from fastapi import FastAPI

from hatoba.api import (
    errors,
    exec_ws,
    job_routes,
    log_routes,
    metrics_routes,
    node_routes,
    param_routes,
    protection_routes,
    routes,
    scaling_routes,
    service_routes,
    token_routes,
)
from hatoba.api.audit import AuditMiddleware
from hatoba.api.services import ApiServices


def create_app(services: ApiServices) -> FastAPI:
    app = FastAPI(
        title="hatoba",
        version=services.version,
        description="Tasks, task definitions, parameters and (soon) services on your own "
        "machines, with Amazon ECS's vocabulary. Authenticate with "
        "`Authorization: Bearer <token>`.",
    )
    app.state.services = services
    errors.install(app)
    app.include_router(routes.public)
    app.include_router(routes.router)
    app.include_router(log_routes.router)
    app.include_router(node_routes.router)
    app.include_router(service_routes.router)
    app.include_router(scaling_routes.router)
    app.include_router(job_routes.router)
    app.include_router(param_routes.router)
    app.include_router(token_routes.router)
    app.include_router(exec_ws.router)
    app.include_router(protection_routes.router)
    app.include_router(metrics_routes.router)
    app.add_middleware(AuditMiddleware, tokens=services.tokens)
    return app
