"""Plain data of placement: what a task needs, what a node has, and why nodes said no.

Rejections are structured the way ECS reports RunTask failures (``RESOURCE:MEMORY``,
``RESOURCE:CPU``, ``RESOURCE:PORTS``, ``INACTIVE_NODE``, ``CONSTRAINT:memberOf (...)``,
``CONSTRAINT:distinctInstance``) so callers can retry on capacity problems and show the
reason. On a large cluster they are kept bounded: a count of nodes per reason plus a few
example nodes, which reads as "RESOURCE:MEMORY on 9,412 nodes (e.g. node-17: ...)".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from hatoba.scheduler.constraints import Constraint

EXAMPLES_PER_REASON = 3
# Order of reasons with equal node counts: capacity first (the usual, retryable cause).
_PRIORITY = (
    "RESOURCE:MEMORY",
    "RESOURCE:CPU",
    "RESOURCE:PORTS",
    "CONSTRAINT:distinctInstance",
    "CONSTRAINT:memberOf",
    "INACTIVE_NODE",
)


def _priority(reason: str) -> int:
    for i, prefix in enumerate(_PRIORITY):
        if reason.startswith(prefix):
            return i
    return len(_PRIORITY)


@dataclass(frozen=True)
class Demand:
    """What one task needs from a node. ``group`` (ECS task group, e.g. ``service:web``)
    is what ``distinctInstance`` and ``spread`` count."""

    cpu: int = 0  # cpu units
    memory: int = 0  # MiB
    host_ports: frozenset[int] = frozenset()
    constraints: tuple[Constraint, ...] = ()
    group: str | None = None


@dataclass(frozen=True)
class NodeCapacity:
    """A node as placement sees it: capacity, what is already reserved, whether it accepts
    new tasks, its attributes and how many tasks of each group it runs."""

    node_id: str
    cpu: int
    memory: int
    used_cpu: int = 0
    used_memory: int = 0
    used_ports: frozenset[int] = frozenset()
    accepting: bool = True
    attributes: Mapping[str, str] = field(default_factory=dict)
    group_counts: Mapping[str, int] = field(default_factory=dict)

    @property
    def free_cpu(self) -> int:
        return self.cpu - self.used_cpu

    @property
    def free_memory(self) -> int:
        return self.memory - self.used_memory

    @property
    def groups(self) -> frozenset[str]:
        return frozenset(g for g, n in self.group_counts.items() if n > 0)

    @property
    def running_tasks(self) -> int:
        return sum(self.group_counts.values())


@dataclass(frozen=True)
class Rejection:
    node_id: str
    reason: str
    detail: str


@dataclass(frozen=True)
class Placement:
    """``rejections`` holds up to ``EXAMPLES_PER_REASON`` examples per reason, most common
    reason first; ``rejected_nodes`` counts nodes per reason over every node examined."""

    node_id: str | None
    rejections: list[Rejection] = field(default_factory=list)
    rejected_nodes: Mapping[str, int] = field(default_factory=dict)

    @property
    def placed(self) -> bool:
        return self.node_id is not None

    def _counts(self) -> Mapping[str, int]:
        if self.rejected_nodes:
            return self.rejected_nodes
        counts: dict[str, int] = {}
        for r in self.rejections:
            counts[r.reason] = counts.get(r.reason, 0) + 1
        return counts

    @property
    def reason(self) -> str:
        """The most telling failure reason (ECS reports one per failure): the one that
        rejected the most nodes."""
        counts = self._counts()
        if not counts:
            return "NO_NODES"
        return min(counts, key=lambda r: (-counts[r], _priority(r), r))

    def summary(self) -> str:
        """A compact "why": one clause per reason with a node count and one example."""
        counts = self._counts()
        if not counts:
            return "no nodes registered"
        example: dict[str, Rejection] = {}
        for r in self.rejections:
            example.setdefault(r.reason, r)
        parts = []
        for reason in sorted(counts, key=lambda r: (-counts[r], _priority(r), r)):
            n = counts[reason]
            text = f"{reason} on {n:,} node{'s' if n != 1 else ''}"
            if reason in example:
                text += f" (e.g. {example[reason].node_id}: {example[reason].detail})"
            parts.append(text)
        return "; ".join(parts)


class Tally:
    """Counts of rejected nodes per reason plus a few examples: bounded memory whatever
    the cluster size."""

    __slots__ = ("counts", "examples")

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.examples: dict[str, list[Rejection]] = {}

    def hit(self, reason: str) -> bool:
        """Count one more node rejected for ``reason``; True when an example is wanted
        (so callers format the detail text only for the few examples kept)."""
        self.counts[reason] = self.counts.get(reason, 0) + 1
        return len(self.examples.get(reason, ())) < EXAMPLES_PER_REASON

    def example(self, node_id: str, reason: str, detail: str) -> None:
        self.examples.setdefault(reason, []).append(Rejection(node_id, reason, detail))

    def add(self, node_id: str, reason: str, detail: str) -> None:
        if self.hit(reason):
            self.example(node_id, reason, detail)

    def rejections(self) -> list[Rejection]:
        """Examples in the order reasons were first seen."""
        return [r for rs in self.examples.values() for r in rs]

    def merged(self, other: Tally) -> Tally:
        if not self.counts:
            return other
        out = Tally()
        for t in (self, other):
            for reason, n in t.counts.items():
                out.counts[reason] = out.counts.get(reason, 0) + n
            for reason, rs in t.examples.items():
                room = EXAMPLES_PER_REASON - len(out.examples.get(reason, ()))
                if room > 0:
                    out.examples.setdefault(reason, []).extend(rs[:room])
        return out

    def placement(self, node_id: str | None) -> Placement:
        order = sorted(self.counts, key=lambda r: (-self.counts[r], _priority(r), r))
        examples = [r for reason in order for r in self.examples.get(reason, ())]
        return Placement(node_id, examples, dict(self.counts))
