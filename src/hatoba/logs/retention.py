"""Retention of the node's log store by total size (``HATOBA_LOG_MAX_BYTES``).

Retention by age is the stopped-task retention (``HATOBA_TASK_RETENTION_HOURS``: a purged
task's directory goes with it). On top of that, when the task directories together exceed
the budget, whole directories are deleted, oldest first: first those of tasks the store no
longer knows, then STOPPED tasks by ``stoppedAt``, and only then those a log output still
owes records of (a warning says so: the output loses them). A task that is not STOPPED is
never touched, even if the budget stays exceeded. The task itself stays describable; only
its logs are gone.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from hatoba.model.layout import DataLayout
from hatoba.model.task import LastStatus
from hatoba.store.protocol import Store

log = logging.getLogger("hatoba.logs.retention")
DEFAULT_MAX_BYTES = 10 * 1024**3


@dataclass(frozen=True)
class DirUsage:
    task_id: str
    bytes: int
    mtime: float


def dir_bytes(path: str) -> tuple[int, float]:
    """Bytes allocated under ``path`` (what the disk holds, sparse files as they are) and
    the newest mtime."""
    total, newest = 0, 0.0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            total += st.st_blocks * 512
            newest = max(newest, st.st_mtime)
    return total, newest


def scan(tasks_dir: str) -> list[DirUsage]:
    try:
        entries = [e for e in os.scandir(tasks_dir) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []
    out = []
    for entry in entries:
        size, mtime = dir_bytes(entry.path)
        out.append(DirUsage(entry.name, size, mtime))
    return out


def choose_evictions(
    usage: Iterable[DirUsage],
    stopped_at: Mapping[str, datetime],
    live: set[str],
    max_bytes: int,
    owed: Collection[str] = (),
) -> list[str]:
    """Pure: which task directories to delete, in order, to fit ``max_bytes``; ``owed``
    (an output has not delivered them yet) go last."""
    dirs = list(usage)
    total = sum(d.bytes for d in dirs)
    if total <= max_bytes:
        return []

    def order(d: DirUsage) -> tuple[bool, bool, float]:
        known = d.task_id in stopped_at
        when = stopped_at[d.task_id].timestamp() if known else d.mtime
        return d.task_id in owed, known, when

    candidates = sorted((d for d in dirs if d.task_id not in live), key=order)
    out: list[str] = []
    for d in candidates:
        if total <= max_bytes:
            break
        out.append(d.task_id)
        total -= d.bytes
    return out


async def enforce_log_budget(
    store: Store, layout: DataLayout, node_id: str, max_bytes: int, owed: Collection[str] = ()
) -> list[str]:
    """Delete the oldest stopped tasks' logs until the node's total fits; returns their ids.

    The directories are listed *before* the store is asked, so a task created meanwhile
    (it is in the store before its directory exists) is never taken for an orphan."""
    usage = await asyncio.to_thread(scan, str(layout.tasks_dir))
    if sum(d.bytes for d in usage) <= max_bytes:
        return []
    stopped = await store.list_tasks(node_id=node_id, last_statuses=[LastStatus.STOPPED])
    live_statuses = [s for s in LastStatus if s != LastStatus.STOPPED]
    live = {t.task_id for t in await store.list_tasks(last_statuses=live_statuses)}
    stopped_at = {t.task_id: t.stopped_at or t.created_at for t in stopped}
    victims = choose_evictions(usage, stopped_at, live, max_bytes, owed)
    lost = [t for t in victims if t in owed]
    if lost:
        log.warning(
            "log store over %d bytes: deleting the logs of %d task(s) a log output has not "
            "delivered yet: %s",
            max_bytes,
            len(lost),
            ", ".join(lost),
        )
    for task_id in victims:
        await asyncio.to_thread(shutil.rmtree, layout.task_dir(task_id), ignore_errors=True)
    if victims:
        log.info(
            "log store over %d bytes: deleted the logs of %d stopped task(s)",
            max_bytes,
            len(victims),
        )
    return victims
