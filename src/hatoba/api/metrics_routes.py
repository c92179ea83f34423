"""``GET /metrics``: Prometheus text format of prometheus-client's default registry (the log
outputs' delivered, dropped and failed records and their backlog in bytes, and the Python
process collectors). A scraper presents a viewer token like any other reader."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from hatoba.api import auth
from hatoba.model.access import Role

router = APIRouter(dependencies=[Depends(auth.require(Role.VIEWER))], tags=["system"])


@router.get("/metrics", response_class=Response)
async def metrics() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
