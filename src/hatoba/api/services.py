"""What the API handlers need, handed in by the composition root (server.py)."""

from __future__ import annotations

from dataclasses import dataclass

from hatoba.agent.node_agent import NodeAgent
from hatoba.controllers.nodes import Nodes
from hatoba.controllers.parameters import Parameters
from hatoba.controllers.service_loop import ServiceScheduler
from hatoba.controllers.services import Services
from hatoba.controllers.taskdefs import TaskDefinitions
from hatoba.controllers.tasks import Tasks
from hatoba.controllers.tokens import Tokens
from hatoba.model.layout import DataLayout
from hatoba.store.protocol import Store


@dataclass
class ApiServices:
    store: Store
    layout: DataLayout
    task_definitions: TaskDefinitions
    tasks: Tasks
    services: Services
    nodes: Nodes
    agent: NodeAgent
    parameters: Parameters
    tokens: Tokens
    token: str
    version: str
    scheduler: ServiceScheduler | None = None  # set once the control plane runs it
