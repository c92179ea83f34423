"""Placement throughput on simulated nodes (no processes): placements/s and µs/placement
with binpack, a memberOf constraint and spread on zone; the same workload at a tenth of the
nodes, to show cost per placement does not grow linearly with the cluster; and a naive
full-scan placer measured in the same run as the baseline.

    python -m benchmarks.placement [--nodes 10000 --tasks 100000] [--quick]

Anchors: Nomad's C1M placed ~3,750 containers/s, C2M ~1,500/s. Target: >= 10,000/s.
Tasks come in services of 1,000 (one task group each), placed with
``[spread attribute:zone, binpack memory]`` and ``memberOf attribute:instance-type !=
t2.small`` against one ``ClusterIndex``, reserving as they go, as a service scheduler would.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Sequence

from hatoba.scheduler.base import Demand, NodeCapacity
from hatoba.scheduler.constraints import MemberOf
from hatoba.scheduler.index import DEFAULT_SAMPLE, ClusterIndex
from hatoba.scheduler.placement import reserve
from hatoba.scheduler.query import NodeView
from hatoba.scheduler.strategies import Binpack, Spread, Strategy

TYPES = {"t2.small": (1024, 2048), "t2.medium": (2048, 4096), "m5.large": (2048, 8192)}
TYPES["c5.xlarge"] = (4096, 8192)
ZONES = ("zone-a", "zone-b", "zone-c")
CONSTRAINT = MemberOf.of("attribute:instance-type != t2.small and attribute:stack == prod")
STRATEGIES: tuple[Strategy, ...] = (Spread("attribute:zone"), Binpack("memory"))
GROUP_SIZE = 1000


def make_nodes(n: int, seed: int) -> list[NodeCapacity]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        itype = rng.choice(list(TYPES))
        cpu, memory = TYPES[itype]
        attrs = {"zone": ZONES[i % 3], "instance-type": itype}
        attrs["stack"] = "prod" if rng.random() < 0.9 else "dev"
        out.append(NodeCapacity(f"node-{i}", cpu, memory, attributes=attrs))
    return out


def make_demands(tasks: int, seed: int) -> list[Demand]:
    rng = random.Random(seed)
    out = []
    for start in range(0, tasks, GROUP_SIZE):
        group = f"service:svc-{start // GROUP_SIZE}"
        d = Demand(
            cpu=rng.choice((32, 64, 128)),
            memory=rng.choice((128, 256, 512)),
            constraints=(CONSTRAINT,),
            group=group,
        )
        out.extend([d] * min(GROUP_SIZE, tasks - start))
    return out


def run_indexed(nodes: int, tasks: int, seed: int, sample: int) -> dict[str, float]:
    cluster = make_nodes(nodes, seed)
    demands = make_demands(tasks, seed)
    index = ClusterIndex(cluster, rng=random.Random(seed), sample=sample)
    placed = 0
    t0 = time.perf_counter()
    for d in demands:
        p = index.place(d, STRATEGIES)
        if p.node_id is not None:
            index.reserve(p.node_id, d)
            placed += 1
    elapsed = time.perf_counter() - t0
    return {
        "nodes": nodes,
        "tasks": tasks,
        "placed": placed,
        "seconds": round(elapsed, 3),
        "placements_per_s": round(tasks / elapsed),
        "us_per_placement": round(elapsed / tasks * 1e6, 2),
    }


def naive_place(demand: Demand, nodes: Sequence[NodeCapacity], zone_counts: dict[str, int]) -> int:
    """Full scan, every node checked and scored: the pre-index algorithm plus constraints."""
    best, best_key = -1, None
    for i, n in enumerate(nodes):
        if not n.accepting or demand.memory > n.free_memory or demand.cpu > n.free_cpu:
            continue
        if not CONSTRAINT.holds(NodeView(n.node_id, n.attributes)):
            continue
        key = (zone_counts.get(n.attributes["zone"], 0), n.free_memory, n.node_id)
        if best_key is None or key < best_key:
            best, best_key = i, key
    return best


def run_naive(nodes: int, tasks: int, seed: int) -> dict[str, float]:
    cluster = make_nodes(nodes, seed)
    demands = make_demands(tasks, seed)
    zone_counts: dict[str, int] = {}
    t0 = time.perf_counter()
    for d in demands:
        i = naive_place(d, cluster, zone_counts)
        if i >= 0:
            cluster[i] = reserve(cluster[i], d)
            zone = cluster[i].attributes["zone"]
            zone_counts[zone] = zone_counts.get(zone, 0) + 1
    elapsed = time.perf_counter() - t0
    return {"nodes": nodes, "tasks": tasks, "us_per_placement": round(elapsed / tasks * 1e6, 2)}


def main(argv: Sequence[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=10_000)
    ap.add_argument("--tasks", type=int, default=100_000)
    ap.add_argument("--naive-tasks", type=int, default=300)
    ap.add_argument("--sample", type=int, default=DEFAULT_SAMPLE)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="tiny sizes, for tests")
    args = ap.parse_args(argv)
    if args.quick:
        args.nodes, args.tasks, args.naive_tasks = 400, 2_000, 50
    large = run_indexed(args.nodes, args.tasks, args.seed, args.sample)
    small = run_indexed(args.nodes // 10, args.tasks // 10, args.seed, args.sample)
    naive = run_naive(args.nodes, min(args.naive_tasks, args.tasks), args.seed)
    result: dict[str, object] = {
        "sample": args.sample,
        "large": large,
        "small": small,
        "naive_full_scan": naive,
        "us_ratio_large_vs_small": round(large["us_per_placement"] / small["us_per_placement"], 2),
        "node_ratio_large_vs_small": round(args.nodes / max(args.nodes // 10, 1), 1),
        "speedup_vs_naive": round(naive["us_per_placement"] / large["us_per_placement"], 1),
        "anchor_nomad_c1m_per_s": 3750,
        "target_per_s": 10_000,
        "meets_target": large["placements_per_s"] >= 10_000,
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
