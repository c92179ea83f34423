"""Nodes as operators see them: list, describe (with what tasks hold), drain, activate.

Drain follows ECS: a DRAINING node takes no new tasks (RunTask reports ``INACTIVE_NODE``);
standalone tasks already running on it keep running until they stop; the service scheduler
moves REPLICA tasks elsewhere (new ones first, within the deployment limits) and stops
DAEMON tasks last, once nothing else runs on the node.
"""

from __future__ import annotations

from hatoba.model.errors import Conflict, NotFound
from hatoba.model.node import Node, NodeDescription, NodeStatus
from hatoba.store.protocol import NodeLoad, Store

CAS_ATTEMPTS = 5


def describe(node: Node, load: NodeLoad | None) -> NodeDescription:
    load = load or NodeLoad()
    return NodeDescription.model_validate(
        node.model_dump()
        | {
            "used_cpu": load.cpu,
            "used_memory": load.memory,
            "running_tasks_count": load.tasks,
        }
    )


class Nodes:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def list_nodes(self) -> list[NodeDescription]:
        load = await self._store.node_load()
        return [describe(n, load.get(n.node_id)) for n in await self._store.list_nodes()]

    async def describe(self, node_id: str) -> NodeDescription:
        node = await self._get(node_id)
        return describe(node, (await self._store.node_load()).get(node_id))

    async def set_status(self, node_id: str, status: NodeStatus) -> NodeDescription:
        """Compare-and-set the node's status (re-read and retried when the agent's
        heartbeat wrote the node in between); unchanged when it already has it."""
        for _ in range(CAS_ATTEMPTS):
            node = await self._get(node_id)
            if node.status != status:
                node.status = status
                try:
                    node = await self._store.put_node(node)
                except Conflict:
                    continue
            return describe(node, (await self._store.node_load()).get(node_id))
        raise Conflict(f"node {node_id} kept changing; try again")

    async def _get(self, node_id: str) -> Node:
        node = await self._store.get_node(node_id)
        if node is None:
            raise NotFound(f"node {node_id} not found")
        return node
