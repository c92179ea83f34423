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


class NodeDescription(Node):
    """A node with what its tasks not yet STOPPED hold (DescribeNode, ListNodes)."""

    used_cpu: int = 0
    used_memory: int = 0
    running_tasks_count: int = 0

    @property
    def free_cpu(self) -> int:
        return self.cpu - self.used_cpu

    @property
    def free_memory(self) -> int:
        return self.memory - self.used_memory
