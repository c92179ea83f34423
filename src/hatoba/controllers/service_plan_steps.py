"""Steps 4 (REPLICA) and 5 (DAEMON) of the service plan: which tasks to keep, what to launch
for the PRIMARY deployment and which tasks to stop, within the deployment configuration's
``maximumPercent`` (launches never take the live count above it) and
``minimumHealthyPercent`` (old tasks are stopped only while enough stay healthy).

Pure: works on ``service_plan.Work``, the plan's mutable working state.
"""

from __future__ import annotations

from collections.abc import Sequence

from hatoba.controllers.service_plan import Launch, Work, started_time
from hatoba.model.node import NodeStatus
from hatoba.model.service import maximum_tasks, minimum_healthy_tasks
from hatoba.model.task import LastStatus, Task


def limits(w: Work, desired: int) -> tuple[int, int]:
    """(minimum healthy tasks, maximum live tasks) for ``desired`` tasks."""
    cfg = w.svc.deployment_configuration
    low, high = cfg.limits(w.svc.scheduling_strategy)
    return minimum_healthy_tasks(desired, low), maximum_tasks(desired, high)


def node_problem(w: Work, t: Task) -> str | None:
    """Why a replica may not stay on its node (DRAINING, INACTIVE, gone); ``None`` when it
    may, or when it has no node yet (waiting for capacity)."""
    if t.node_id is None:
        return None
    node = w.nodes.get(t.node_id)
    if node is None:
        return f"Node {t.node_id} is not registered"
    if node.status == NodeStatus.DRAINING:
        return f"Node {t.node_id} is draining"
    if node.status == NodeStatus.INACTIVE:
        return f"Node {t.node_id} is inactive"
    return None


def _protected(w: Work, t: Task) -> bool:
    """Task scale-in protection: honoured while the service is ACTIVE (not when deleted)."""
    return w.active and t.protected_until is not None and t.protected_until > w.now


def _scale_in_key(w: Work, t: Task) -> tuple[int, float, str]:
    """Scale in: PROVISIONING first, then other pending, then not healthy, newest first."""
    if t.last_status == LastStatus.PROVISIONING:
        rank = 0
    elif t.last_status != LastStatus.RUNNING:
        rank = 1
    else:
        rank = 2 if not w.healthy(t) else 3
    return (rank, -started_time(t).timestamp(), t.task_id)


def stop_replaced(w: Work, tasks: Sequence[Task], min_healthy: int) -> None:
    """Stop tasks being replaced: those not healthy always; healthy ones (oldest deployment
    first, then oldest task) only while enough stay healthy, unless the service is
    being deleted."""

    def reason(t: Task) -> str:
        if w.is_primary(t):
            return node_problem(w, t) or w.deployment_reason(t)
        return w.deployment_reason(t)

    for t in tasks:
        if not w.healthy(t):
            w.stop(t, reason(t))
    healthy = sorted(
        (t for t in tasks if t.task_id in w.live),
        key=lambda t: (w.deployment_rank(t), started_time(t), t.task_id),
    )
    total = w.healthy_count()
    for t in healthy:
        if w.active and total - 1 < min_healthy:
            break
        w.stop(t, reason(t))
        total -= 1


def replica_step(w: Work, desired: int) -> tuple[list[Task], int]:
    """Returns the PRIMARY tasks kept and how many other live tasks remain."""
    primary = w.primary
    min_healthy, max_total = limits(w, desired)
    keep = [t for t in w.live.values() if w.is_primary(t) and node_problem(w, t) is None]
    # a) scale in, sparing tasks protected from it (the count stays above desired until
    # their protection expires: wake then)
    if len(keep) > desired:
        extra = len(keep) - desired
        protected = [t for t in keep if _protected(w, t)]
        candidates = [t for t in keep if not _protected(w, t)]
        for t in sorted(candidates, key=lambda t: _scale_in_key(w, t))[:extra]:
            w.stop(t, w.deployment_reason(t))
        if len(candidates) < extra:
            w.wake(min(t.protected_until or w.now for t in protected))
        keep = [t for t in keep if t.task_id in w.live]
    # b) launch for the primary, within maximumPercent
    if primary is not None and not w.frozen():
        n = min(desired - len(keep), max_total - len(w.live))
        if n > 0 and not w.throttled():
            w.launches.append(Launch(primary.id, n))
    # c) stop what is being replaced, keeping minimumHealthyPercent healthy
    kept = {t.task_id for t in keep}
    replace = [t for t in w.live.values() if t.task_id not in kept]
    if w.active and w.frozen():  # a failed rollout: only node drains still move tasks
        replace = [t for t in replace if node_problem(w, t) is not None]
    stop_replaced(w, replace, min_healthy)
    return keep, sum(1 for t in w.live if t not in kept)


def _daemon_pick_key(w: Work, t: Task) -> tuple[bool, bool, float, str]:
    """Of duplicates on one node, keep the healthy, running, oldest one."""
    return (
        not w.healthy(t),
        t.last_status != LastStatus.RUNNING,
        started_time(t).timestamp(),
        t.task_id,
    )


def daemon_step(w: Work, desired: int) -> tuple[list[Task], int]:
    """One PRIMARY task per eligible ACTIVE node. Returns the PRIMARY tasks kept and how
    many other live tasks remain (PRIMARY tasks waiting on a DRAINING node not counted)."""
    primary = w.primary
    min_healthy, max_total = limits(w, desired)
    eligible = sorted(
        n.node_id for n in w.inp.nodes if w.active and n.status == NodeStatus.ACTIVE and n.eligible
    )
    placed: dict[str, list[Task]] = {}
    old: list[Task] = []
    unplaced: list[Task] = []
    waiting: set[str] = set()
    for t in list(w.live.values()):
        node = w.nodes.get(t.node_id) if t.node_id else None
        if not w.active:
            w.stop(t, w.deployment_reason(t))
        elif t.node_id is None:  # launched for a node it did not fit on yet
            if w.is_primary(t):
                unplaced.append(t)
            else:
                w.stop(t, w.deployment_reason(t))
        elif node is None:
            w.stop(t, f"Node {t.node_id} is not registered")
        elif node.status == NodeStatus.DRAINING:
            # daemons stop last: once the node's other tasks are gone
            if node.non_daemon_tasks == 0:
                w.stop(t, f"Node {t.node_id} is draining")
            elif w.is_primary(t):
                waiting.add(t.task_id)
        elif node.status == NodeStatus.INACTIVE:
            w.stop(t, f"Node {t.node_id} is inactive")
        elif not node.eligible:
            w.stop(t, f"Node {t.node_id} no longer satisfies the placement constraints")
        elif w.is_primary(t):
            placed.setdefault(t.node_id, []).append(t)
        else:
            old.append(t)
    keep: list[Task] = []
    for tasks in placed.values():
        first, *rest = sorted(tasks, key=lambda t: _daemon_pick_key(w, t))
        keep.append(first)
        for t in rest:
            w.stop(t, w.deployment_reason(t))
    busy = {t.node_id for t in w.live.values()}
    free = [n for n in eligible if n not in placed and n not in w.stopping_nodes]
    free.sort(key=lambda n: (n in busy, n))
    # tasks still waiting for room on their node stand for as many free nodes
    unplaced.sort(key=lambda t: (started_time(t), t.task_id))
    for t in unplaced[len(free) :]:
        w.stop(t, w.deployment_reason(t))
    free = free[len(unplaced) :]
    if primary is not None and not w.frozen():
        room = min(len(free), max_total - len(w.live))
        if room > 0 and not w.throttled():
            w.launches.extend(Launch(primary.id, 1, n) for n in free[:room])
        stop_replaced(w, old, min_healthy)
    kept = {t.task_id for t in keep} | waiting
    return keep, sum(1 for t in w.live if t not in kept)
