"""Choosing a forward node, as a Fluent Bit ``[UPSTREAM]`` with several ``[NODE]``s does.

``roundRobin`` spreads chunks over the healthy nodes in proportion to their weights (smooth
weighted round-robin: with weights 2 and 1, every three chunks go A, B, A);
``failover`` sends to the first healthy node in order, the others standing by. A node that
fails is marked down and left alone for a back-off (``retry_min`` doubling to ``retry_max``),
then tried again; a success resets it. Pure bookkeeping: time is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

from hatoba.model.log_outputs import Balance, ForwardNode


@dataclass
class NodeState:
    node: ForwardNode
    failures: int = 0
    down_until: float = 0.0
    current: int = 0  # smooth weighted round-robin's running score

    @property
    def label(self) -> str:
        return f"{self.node.host}:{self.node.port}"

    def up(self, now: float) -> bool:
        return now >= self.down_until


class Upstream:
    def __init__(
        self,
        nodes: list[ForwardNode],
        balance: Balance = Balance.ROUND_ROBIN,
        *,
        retry_min: float = 1.0,
        retry_max: float = 30.0,
    ) -> None:
        if not nodes:
            raise ValueError("an upstream needs at least one node")
        self.nodes = [NodeState(n) for n in nodes]
        self.balance = balance
        self.retry_min = retry_min
        self.retry_max = max(retry_max, retry_min)

    def candidates(self, now: float) -> list[NodeState]:
        """The nodes to try for one chunk, in order: the balancer's pick first, then the
        other healthy nodes (failover within a chunk). Empty when every node is down."""
        live = [n for n in self.nodes if n.up(now)]
        if not live or self.balance is Balance.FAILOVER:
            return live
        total = sum(n.node.weight for n in live)
        for n in live:
            n.current += n.node.weight
        best = max(live, key=lambda n: n.current)
        best.current -= total
        i = live.index(best)
        return live[i:] + live[:i]

    def mark_down(self, state: NodeState, now: float) -> float:
        """Returns the back-off given to the node."""
        state.failures += 1
        backoff = min(self.retry_max, self.retry_min * 2.0 ** (state.failures - 1))
        state.down_until = now + backoff
        return backoff

    def mark_up(self, state: NodeState) -> None:
        state.failures = 0
        state.down_until = 0.0

    def next_up_in(self, now: float) -> float:
        """Seconds until some node may be tried again (0 when one is up)."""
        return max(0.0, min(n.down_until for n in self.nodes) - now)
