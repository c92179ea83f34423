"""Decide which node a task goes to, and say why every other node was rejected.

The result of a failed placement is structured the way ECS reports RunTask failures
(``RESOURCE:MEMORY``, ``RESOURCE:CPU``, ``RESOURCE:PORTS``, ``INACTIVE_NODE``) so callers
can retry on capacity problems and show the reason to users.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Demand:
    """What one task needs from a node."""

    cpu: int = 0  # cpu units
    memory: int = 0  # MiB
    host_ports: frozenset[int] = frozenset()


@dataclass(frozen=True)
class NodeCapacity:
    """A node as placement sees it: capacity, what is already reserved, and whether it
    accepts new tasks."""

    node_id: str
    cpu: int
    memory: int
    used_cpu: int = 0
    used_memory: int = 0
    used_ports: frozenset[int] = frozenset()
    accepting: bool = True

    @property
    def free_cpu(self) -> int:
        return self.cpu - self.used_cpu

    @property
    def free_memory(self) -> int:
        return self.memory - self.used_memory


@dataclass(frozen=True)
class Rejection:
    node_id: str
    reason: str  # RESOURCE:CPU, RESOURCE:MEMORY, RESOURCE:PORTS, INACTIVE_NODE
    detail: str


@dataclass(frozen=True)
class Placement:
    node_id: str | None
    rejections: list[Rejection] = field(default_factory=list)

    @property
    def placed(self) -> bool:
        return self.node_id is not None

    @property
    def reason(self) -> str:
        """The most telling failure reason (ECS reports one per failure)."""
        if not self.rejections:
            return "NO_NODES"
        return self.rejections[0].reason


def rejections_for(demand: Demand, node: NodeCapacity) -> list[Rejection]:
    """Every reason ``node`` cannot take ``demand`` (empty when it can)."""
    out: list[Rejection] = []
    if not node.accepting:
        out.append(Rejection(node.node_id, "INACTIVE_NODE", "node is not ACTIVE"))
    if demand.memory > node.free_memory:
        out.append(
            Rejection(
                node.node_id,
                "RESOURCE:MEMORY",
                f"needs {demand.memory} MiB, {max(node.free_memory, 0)} of {node.memory} free",
            )
        )
    if demand.cpu > node.free_cpu:
        out.append(
            Rejection(
                node.node_id,
                "RESOURCE:CPU",
                f"needs {demand.cpu} cpu units, {max(node.free_cpu, 0)} of {node.cpu} free",
            )
        )
    taken = sorted(demand.host_ports & node.used_ports)
    if taken:
        out.append(Rejection(node.node_id, "RESOURCE:PORTS", f"host ports in use: {taken}"))
    return out


def place(demand: Demand, nodes: Iterable[NodeCapacity]) -> Placement:
    """Binpack by memory then cpu: the feasible node with the least free memory wins,
    which keeps other nodes empty for big tasks and lets scale-in free whole machines."""
    feasible: list[NodeCapacity] = []
    rejected: list[Rejection] = []
    for node in nodes:
        why = rejections_for(demand, node)
        if why:
            rejected.extend(why)
        else:
            feasible.append(node)
    if not feasible:
        return Placement(None, rejected)
    best = min(feasible, key=lambda n: (n.free_memory, n.free_cpu, n.node_id))
    return Placement(best.node_id, rejected)


def reserve(node: NodeCapacity, demand: Demand) -> NodeCapacity:
    """The node after ``demand`` is placed on it (for placing several tasks in one call)."""
    return NodeCapacity(
        node_id=node.node_id,
        cpu=node.cpu,
        memory=node.memory,
        used_cpu=node.used_cpu + demand.cpu,
        used_memory=node.used_memory + demand.memory,
        used_ports=node.used_ports | demand.host_ports,
        accepting=node.accepting,
    )


def place_many(demand: Demand, count: int, nodes: Sequence[NodeCapacity]) -> list[Placement]:
    """Place ``count`` copies, each seeing the capacity the previous ones took."""
    current = {n.node_id: n for n in nodes}
    out: list[Placement] = []
    for _ in range(count):
        p = place(demand, current.values())
        out.append(p)
        if p.node_id is not None:
            current[p.node_id] = reserve(current[p.node_id], demand)
    return out
