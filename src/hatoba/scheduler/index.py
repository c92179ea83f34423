"""A mutable index of the cluster for fast, repeated placement.

Per-node state lives in parallel lists (free cpu, free memory, ports, group counts), so
placing a task reads a few list slots per node and ``reserve`` updates them in place: no
per-task rebuild of node objects. What never changes while the index lives is cached:
which nodes pass the static constraints (``INACTIVE_NODE`` and ``memberOf`` on attributes),
and per spread attribute, the task count of each group per attribute value.

Bounded sampling (Nomad's approach): nodes are shuffled once, then each placement scans
from a random offset and stops after ``limit = max(sample, log2(n))`` feasible candidates,
which it ranks by the strategies. Cost per placement therefore depends on the sample and
on how many infeasible nodes sit between feasible ones, not on the cluster size. The
trade-off: the winner is the best of a random sample, not of the whole cluster (binpack
packs "a fairly full node", not the fullest; spread balances on average). When fewer than
``limit`` nodes are feasible the scan covers every eligible node, so a task that fits
anywhere is placed, and clusters no larger than the sample get an exact, full ranking.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import chain

from hatoba.scheduler.base import (
    EXAMPLES_PER_REASON,
    Demand,
    NodeCapacity,
    Placement,
    Rejection,
    Tally,
)
from hatoba.scheduler.constraints import Constraint, DistinctInstance, MemberOf
from hatoba.scheduler.query import NodeView
from hatoba.scheduler.strategies import DEFAULT_STRATEGIES, Binpack, Spread, Strategy

DEFAULT_SAMPLE = 16
_Key = Callable[[int], tuple[object, ...]]


@dataclass
class _Eligible:
    """Nodes passing the static checks, in scan order, and why the others did not."""

    order: list[int]
    tally: Tally
    rejections: list[Rejection]


@dataclass(frozen=True)
class _Plan:
    """A demand's constraints sorted by when they can be checked."""

    static: tuple[MemberOf, ...]
    dynamic: tuple[MemberOf, ...]
    distinct: bool

    @classmethod
    def of(cls, constraints: tuple[Constraint, ...]) -> _Plan:
        member_of = [c for c in constraints if isinstance(c, MemberOf)]
        return cls(
            tuple(c for c in member_of if c.static),
            tuple(c for c in member_of if not c.static),
            any(isinstance(c, DistinctInstance) for c in constraints),
        )


def _combine(parts: Sequence[Callable[[int], object]], ids: list[str]) -> _Key:
    """One sort key from the strategies' parts, node id last; unrolled for the usual
    one or two strategies because this runs for every sampled candidate."""
    if len(parts) == 1:
        (a,) = parts
        return lambda i: (a(i), ids[i])
    if len(parts) == 2:
        a, b = parts
        return lambda i: (a(i), b(i), ids[i])
    return lambda i: (*[p(i) for p in parts], ids[i])


class ClusterIndex:
    def __init__(
        self,
        nodes: Iterable[NodeCapacity],
        *,
        rng: random.Random | None = None,
        sample: int = DEFAULT_SAMPLE,
    ) -> None:
        nodes = list(nodes)
        self.rng = rng if rng is not None else random.Random()
        self.sample = max(1, sample)
        self.ids = [n.node_id for n in nodes]
        self.pos = {nid: i for i, nid in enumerate(self.ids)}
        self.cpu = [n.cpu for n in nodes]
        self.memory = [n.memory for n in nodes]
        self.free_cpu = [n.free_cpu for n in nodes]
        self.free_mem = [n.free_memory for n in nodes]
        self.ports = [set(n.used_ports) for n in nodes]
        self.accepting = [n.accepting for n in nodes]
        self.attrs = [n.attributes for n in nodes]
        self.counts = [dict(n.group_counts) for n in nodes]
        order = list(range(len(nodes)))
        if len(order) > self.sample:  # small clusters keep their order: exact and stable
            self.rng.shuffle(order)
        self._order = order
        self._eligible: dict[tuple[MemberOf, ...], _Eligible] = {}
        self._spread: dict[str, dict[str, dict[str | None, int]]] = {}
        self._keys: dict[tuple[str, tuple[Strategy, ...]], _Key] = {}
        self._values: dict[str, list[str | None]] = {}
        self._plans: dict[tuple[Constraint, ...], _Plan] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def node(self, node_id: str) -> NodeCapacity:
        """A snapshot of one node's current state."""
        i = self.pos[node_id]
        return NodeCapacity(
            node_id=node_id,
            cpu=self.cpu[i],
            memory=self.memory[i],
            used_cpu=self.cpu[i] - self.free_cpu[i],
            used_memory=self.memory[i] - self.free_mem[i],
            used_ports=frozenset(self.ports[i]),
            accepting=self.accepting[i],
            attributes=self.attrs[i],
            group_counts=dict(self.counts[i]),
        )

    def _view(self, i: int) -> NodeView:
        c = self.counts[i]
        groups = frozenset(g for g, n in c.items() if n > 0)
        return NodeView(self.ids[i], self.attrs[i], groups, sum(c.values()))

    def _static(self, i: int, member_of: Sequence[MemberOf], tally: Tally) -> bool:
        nid, ok = self.ids[i], True
        if not self.accepting[i]:
            tally.add(nid, "INACTIVE_NODE", "node is not ACTIVE")
            ok = False
        if member_of:
            view = self._view(i)
            for c in member_of:
                if not c.holds(view):
                    tally.add(nid, c.reason, "expression is false for this node")
                    ok = False
        return ok

    def _dynamic(self, i: int, demand: Demand, dyn: Sequence[MemberOf], tally: Tally) -> None:
        """Record every dynamic reason node ``i`` cannot take ``demand``."""
        nid = self.ids[i]
        free_mem, free_cpu = self.free_mem[i], self.free_cpu[i]
        if demand.memory > free_mem and tally.hit("RESOURCE:MEMORY"):
            detail = f"needs {demand.memory} MiB, {max(free_mem, 0)} of {self.memory[i]} free"
            tally.example(nid, "RESOURCE:MEMORY", detail)
        if demand.cpu > free_cpu and tally.hit("RESOURCE:CPU"):
            detail = f"needs {demand.cpu} cpu units, {max(free_cpu, 0)} of {self.cpu[i]} free"
            tally.example(nid, "RESOURCE:CPU", detail)
        taken = demand.host_ports & self.ports[i]
        if taken and tally.hit("RESOURCE:PORTS"):
            tally.example(nid, "RESOURCE:PORTS", f"host ports in use: {sorted(taken)}")
        group = demand.group or ""
        distinct = any(isinstance(c, DistinctInstance) for c in demand.constraints)
        if distinct and self.counts[i].get(group) and tally.hit(DistinctInstance.reason):
            detail = f"already runs a task of group {group!r}"
            tally.example(nid, DistinctInstance.reason, detail)
        if dyn:
            view = self._view(i)
            for c in dyn:
                if not c.holds(view):
                    tally.add(nid, c.reason, "expression is false for this node")

    def rejections_for(self, demand: Demand, node_id: str) -> list[Rejection]:
        """Every reason ``node_id`` cannot take ``demand`` now (empty when it can)."""
        i, tally = self.pos[node_id], Tally()
        member_of = [c for c in demand.constraints if isinstance(c, MemberOf)]
        self._static(i, [c for c in member_of if c.static], tally)
        self._dynamic(i, demand, [c for c in member_of if not c.static], tally)
        return tally.rejections()

    def _eligible_for(self, member_of: tuple[MemberOf, ...]) -> _Eligible:
        hit = self._eligible.get(member_of)
        if hit is None:
            tally = Tally()
            order = [i for i in self._order if self._static(i, member_of, tally)]
            hit = _Eligible(order, tally, tally.placement(None).rejections)
            self._eligible[member_of] = hit
        return hit

    def _value_counts(self, group: str, attribute: str) -> dict[str | None, int]:
        """Tasks of ``group`` per value of ``attribute``; kept current by ``reserve``."""
        per_attr = self._spread.setdefault(group, {})
        vc = per_attr.get(attribute)
        if vc is None:
            vc = {}
            for attrs, counts in zip(self.attrs, self.counts, strict=True):
                v = attrs.get(attribute)
                vc[v] = vc.get(v, 0) + counts.get(group, 0)
            per_attr[attribute] = vc
        return vc

    def _key(self, group: str, strategies: tuple[Strategy, ...]) -> _Key:
        cached = self._keys.get((group, strategies))
        if cached is not None:
            return cached
        parts: list[Callable[[int], object]] = []
        for s in strategies:
            if isinstance(s, Binpack):
                parts.append((self.free_mem if s.field == "memory" else self.free_cpu).__getitem__)
            elif isinstance(s, Spread):
                parts.append(self._spread_part(group, s))
            else:
                parts.append(self._random_part())
        key = _combine(parts, self.ids)
        self._keys[(group, strategies)] = key
        return key

    def _random_part(self) -> Callable[[int], object]:
        rnd = self.rng.random
        return lambda _i: rnd()

    def _spread_part(self, group: str, s: Spread) -> Callable[[int], object]:
        attribute, counts = s.attribute, self.counts
        if attribute is None:
            return lambda i: counts[i].get(group, 0)
        vc = self._value_counts(group, attribute)
        values = self._values.get(attribute)
        if values is None:
            values = self._values[attribute] = [a.get(attribute) for a in self.attrs]
        get = vc.get
        return lambda i: get(values[i], 0)

    def place(
        self, demand: Demand, strategies: Sequence[Strategy] = DEFAULT_STRATEGIES
    ) -> Placement:
        """Feasibility -> rank -> select over a bounded sample (see the module doc)."""
        plan = self._plans.get(demand.constraints)
        if plan is None:
            plan = self._plans[demand.constraints] = _Plan.of(demand.constraints)
        dyn, distinct = plan.dynamic, plan.distinct
        elig = self._eligible_for(plan.static)
        order, n = elig.order, len(elig.order)
        limit = max(self.sample, n.bit_length())
        start = self.rng.randrange(n) if n > limit else 0
        mem, cpu, ports = demand.memory, demand.cpu, demand.host_ports
        group = demand.group or ""
        distinct = any(isinstance(c, DistinctInstance) for c in demand.constraints)
        free_mem, free_cpu, node_ports, counts = (
            self.free_mem,
            self.free_cpu,
            self.ports,
            self.counts,
        )
        cands: list[int] = []
        rejected: list[int] = []
        for k in chain(range(start, n), range(start)):
            i = order[k]
            if (
                free_mem[i] < mem
                or free_cpu[i] < cpu
                or (ports and not ports.isdisjoint(node_ports[i]))
                or (distinct and counts[i].get(group))
                or (dyn and not all(c.holds(self._view(i)) for c in dyn))
            ):
                rejected.append(i)
                continue
            cands.append(i)
            if len(cands) >= limit:
                break
        best: str | None = None
        if cands:
            i = cands[0] if len(cands) == 1 else min(cands, key=self._key(group, tuple(strategies)))
            best = self.ids[i]
        if rejected:
            tally = self._tally_of(rejected, demand, dyn, distinct)
            return elig.tally.merged(tally).placement(best)
        counts_ = elig.tally.counts
        return Placement(best, list(elig.rejections), counts_) if counts_ else Placement(best)

    def _tally_of(
        self, rejected: list[int], demand: Demand, dyn: Sequence[MemberOf], distinct: bool
    ) -> Tally:
        """Why the scanned nodes were rejected. The usual case (memory/cpu) is counted
        inline; full details are formatted only for the few examples kept."""
        mem, cpu, free_mem, free_cpu = demand.memory, demand.cpu, self.free_mem, self.free_cpu
        if demand.host_ports or dyn or distinct:
            tally = Tally()
            for i in rejected:
                self._dynamic(i, demand, dyn, tally)
            return tally
        n_mem = n_cpu = 0
        ex_mem: list[int] = []
        ex_cpu: list[int] = []
        for i in rejected:
            if free_mem[i] < mem:
                n_mem += 1
                if len(ex_mem) < EXAMPLES_PER_REASON:
                    ex_mem.append(i)
            if free_cpu[i] < cpu:
                n_cpu += 1
                if len(ex_cpu) < EXAMPLES_PER_REASON:
                    ex_cpu.append(i)
        tally = Tally()
        for i in ex_mem:
            self._dynamic(i, demand, dyn, tally)
        for i in ex_cpu:
            if i not in ex_mem:
                self._dynamic(i, demand, dyn, tally)
        if n_mem:
            tally.counts["RESOURCE:MEMORY"] = n_mem
        if n_cpu:
            tally.counts["RESOURCE:CPU"] = n_cpu
        return tally

    def reserve(self, node_id: str, demand: Demand) -> None:
        """Take ``demand`` on ``node_id``: later placements see it."""
        i = self.pos[node_id]
        self.free_cpu[i] -= demand.cpu
        self.free_mem[i] -= demand.memory
        if demand.host_ports:
            self.ports[i] |= demand.host_ports
        group = demand.group or ""
        c = self.counts[i]
        c[group] = c.get(group, 0) + 1
        for attribute, vc in self._spread.get(group, {}).items():
            v = self.attrs[i].get(attribute)
            vc[v] = vc.get(v, 0) + 1
