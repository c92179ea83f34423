"""Nodes: the machines hatoba runs tasks on (ECS "container instances")."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from hatoba.model.base import WireModel


class NodeStatus(StrEnum):
    ACTIVE = "ACTIVE"
    DRAINING = "DRAINING"
    INACTIVE = "INACTIVE"


class Node(WireModel):
    node_id: str
    cluster: str = "default"
    hostname: str
    status: NodeStatus = NodeStatus.ACTIVE
    cpu: int  # cpu units, 1024 per core
    memory: int  # MiB
    attributes: dict[str, str] = Field(default_factory=dict)
    driver: str = "process"
    registered_at: datetime
    heartbeat_at: datetime
    version: int = 0
