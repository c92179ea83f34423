"""REST endpoints for nodes: list and describe (viewer), drain and activate (operator)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from hatoba.api import auth
from hatoba.api.schemas import NodeList
from hatoba.api.services import ApiServices
from hatoba.model.access import Role
from hatoba.model.node import NodeDescription, NodeStatus

router = APIRouter(prefix="/v1", dependencies=[Depends(auth.require(Role.VIEWER))], tags=["nodes"])


async def services(request: Request) -> ApiServices:
    svc: ApiServices = request.app.state.services
    return svc


Svc = Annotated[ApiServices, Depends(services)]


@router.get("/nodes", response_model=NodeList, response_model_exclude_none=True)
async def list_nodes(svc: Svc) -> NodeList:
    return NodeList(nodes=await svc.nodes.list_nodes())


@router.get("/nodes/{node_id}", response_model=NodeDescription, response_model_exclude_none=True)
async def describe_node(svc: Svc, node_id: str) -> NodeDescription:
    """The node with what its tasks not yet STOPPED hold (usedCpu, usedMemory,
    runningTasksCount)."""
    return await svc.nodes.describe(node_id)


@router.post(
    "/nodes/{node_id}/drain", response_model=NodeDescription, response_model_exclude_none=True
)
async def drain_node(svc: Svc, _: auth.Operator, node_id: str) -> NodeDescription:
    """DRAINING: no new tasks are placed on the node; standalone tasks already on it keep
    running until they stop (as in ECS)."""
    return await svc.nodes.set_status(node_id, NodeStatus.DRAINING)


@router.post(
    "/nodes/{node_id}/activate", response_model=NodeDescription, response_model_exclude_none=True
)
async def activate_node(svc: Svc, _: auth.Operator, node_id: str) -> NodeDescription:
    """ACTIVE: the node takes new tasks again."""
    return await svc.nodes.set_status(node_id, NodeStatus.ACTIVE)
