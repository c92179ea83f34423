"""What the API handlers need, handed in by the composition root (server.py)."""

from __future__ import annotations

from dataclasses import dataclass

from hatoba.agent.node_agent import NodeAgent
from hatoba.controllers.job_loop import JobScheduler
from hatoba.controllers.jobs import Jobs
from hatoba.controllers.nodes import Nodes
from hatoba.controllers.parameters import Parameters
from hatoba.controllers.scaling import Scaling
from hatoba.controllers.scaling_loop import ScalingLoop
from hatoba.controllers.service_loop import ServiceScheduler
from hatoba.controllers.services import Services
from hatoba.controllers.task_tokens import TaskTokens
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
    jobs: Jobs  # scheduled and batch jobs (declared side, runs, history)
    scheduler: ServiceScheduler | None = None  # set once the control plane runs it
    scaling: Scaling | None = None  # autoscaling's declared side and task protection
    scaling_loop: ScalingLoop | None = None  # set once the control plane runs it
    task_tokens: TaskTokens | None = None  # verifies HATOBA_TASK_TOKEN (agent endpoint)
    job_scheduler: JobScheduler | None = None  # set once the control plane runs it
