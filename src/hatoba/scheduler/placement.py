"""Decide which node a task goes to, and say why every other node was rejected.

The public entry points. ``place``/``place_many`` build a ``ClusterIndex`` over the given
nodes; a caller placing many tasks against the same cluster (a service scheduler, the
benchmark) keeps one index and calls ``ClusterIndex.place``/``reserve`` itself.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

from hatoba.scheduler.base import Demand, NodeCapacity, Placement, Rejection
from hatoba.scheduler.index import DEFAULT_SAMPLE, ClusterIndex
from hatoba.scheduler.strategies import DEFAULT_STRATEGIES, Strategy

__all__ = [
    "Demand",
    "NodeCapacity",
    "Placement",
    "Rejection",
    "place",
    "place_many",
    "rejections_for",
    "reserve",
]


def rejections_for(demand: Demand, node: NodeCapacity) -> list[Rejection]:
    """Every reason ``node`` cannot take ``demand`` (empty when it can)."""
    return ClusterIndex([node]).rejections_for(demand, node.node_id)


def place(
    demand: Demand,
    nodes: Iterable[NodeCapacity],
    strategies: Sequence[Strategy] = DEFAULT_STRATEGIES,
    *,
    rng: random.Random | None = None,
    sample: int = DEFAULT_SAMPLE,
) -> Placement:
    """Place one task. The default strategy binpacks by memory then cpu: the feasible node
    with the least free memory wins, which keeps other nodes empty for big tasks and lets
    scale-in free whole machines."""
    return ClusterIndex(nodes, rng=rng, sample=sample).place(demand, strategies)


def reserve(node: NodeCapacity, demand: Demand) -> NodeCapacity:
    """The node after ``demand`` is placed on it."""
    group = demand.group or ""
    counts = dict(node.group_counts)
    counts[group] = counts.get(group, 0) + 1
    return NodeCapacity(
        node_id=node.node_id,
        cpu=node.cpu,
        memory=node.memory,
        used_cpu=node.used_cpu + demand.cpu,
        used_memory=node.used_memory + demand.memory,
        used_ports=node.used_ports | demand.host_ports,
        accepting=node.accepting,
        attributes=node.attributes,
        group_counts=counts,
    )


def place_many(
    demand: Demand,
    count: int,
    nodes: Sequence[NodeCapacity],
    strategies: Sequence[Strategy] = DEFAULT_STRATEGIES,
    *,
    rng: random.Random | None = None,
    sample: int = DEFAULT_SAMPLE,
) -> list[Placement]:
    """Place ``count`` copies, each seeing the capacity (and groups) the previous ones took."""
    index = ClusterIndex(nodes, rng=rng, sample=sample)
    out: list[Placement] = []
    for _ in range(count):
        p = index.place(demand, strategies)
        out.append(p)
        if p.node_id is not None:
            index.reserve(p.node_id, demand)
    return out
