"""Read-modify-write of a task with compare-and-set, retried when someone else wrote first.

The agent and the API both write tasks (the API sets ``desiredStatus``, the agent reports
``lastStatus``); each change is a function applied to the freshest copy, so neither
overwrites the other's fields.
"""

from __future__ import annotations

from collections.abc import Callable

from hatoba.model.errors import Conflict, NotFound
from hatoba.model.task import Task
from hatoba.store.protocol import Store

MAX_ATTEMPTS = 50


async def mutate_task(
    store: Store,
    task_id: str,
    change: Callable[[Task], Task | None],
    *,
    current: Task | None = None,
) -> Task:
    """Apply ``change`` (which returns the new task, or None for "no change") and store it.

    ``current`` is a copy the caller already holds; it is tried first and re-read on conflict.
    """
    task = current
    for _ in range(MAX_ATTEMPTS):
        if task is None:
            task = await store.get_task(task_id)
            if task is None:
                raise NotFound(f"task {task_id} not found")
        updated = change(task.model_copy(deep=True))
        if updated is None:
            return task
        try:
            return await store.update_task(updated)
        except Conflict:
            task = None
    raise Conflict(f"task {task_id}: too many concurrent updates")
