"""What the rest of hatoba needs from persistent state.

Writes of mutable objects are compare-and-set: ``update_*`` takes the object as read (its
``version``) and raises ``hatoba.model.errors.Conflict`` if someone else wrote it since.
Every write appends to a change feed (``changes_since``), so loops can wake on changes
instead of polling; in-process writers also wake ``wait_for_change`` at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from hatoba.model.node import Node
from hatoba.model.task import DesiredStatus, LastStatus, Task
from hatoba.model.taskdef import TaskDefinition, TaskDefinitionStatus


@dataclass(frozen=True)
class Change:
    seq: int
    kind: str  # "task", "taskdef", "node"
    key: str  # task id, "family:revision", node id
    at: datetime
    # The object as this change committed it, when this process made the change (so a
    # reader needs no re-read); None when read back from the database, and for deletes.
    # Shared between readers: treat it as read-only.
    value: Task | TaskDefinition | Node | None = field(default=None, compare=False, repr=False)


class Store(Protocol):
    async def migrate(self) -> None:
        """Create or upgrade the schema (numbered migrations, idempotent)."""
        ...

    async def close(self) -> None: ...

    # -- task definitions ------------------------------------------------------------
    async def register_task_definition(self, taskdef: TaskDefinition) -> TaskDefinition:
        """Store a new revision of ``taskdef.family``; the revision is assigned atomically
        (1 + the highest ever registered for the family, never reused). Returns the stored
        object with ``revision`` and ``registered_at`` set."""
        ...

    async def get_task_definition(
        self, family: str, revision: int | None = None
    ) -> TaskDefinition | None:
        """A revision, or with ``revision=None`` the latest ACTIVE one."""
        ...

    async def list_task_definitions(
        self, family: str | None = None, status: TaskDefinitionStatus | None = None
    ) -> list[TaskDefinition]:
        """Ordered by family, then revision."""
        ...

    async def set_task_definition_status(
        self, family: str, revision: int, status: TaskDefinitionStatus
    ) -> TaskDefinition:
        """The only mutation a registered revision allows (deregister). NotFound if absent."""
        ...

    # -- tasks -------------------------------------------------------------------------
    async def create_task(self, task: Task) -> Task: ...

    async def get_task(self, task_id: str) -> Task | None: ...

    async def find_tasks_by_prefix(self, prefix: str, limit: int = 2) -> list[Task]:
        """Tasks whose id starts with ``prefix`` (for short ids in the CLI)."""
        ...

    async def list_tasks(
        self,
        *,
        node_id: str | None = None,
        family: str | None = None,
        desired_status: DesiredStatus | None = None,
        last_statuses: Sequence[LastStatus] | None = None,
        started_by: str | None = None,
        group: str | None = None,
        limit: int | None = None,
    ) -> list[Task]:
        """Newest first (by created_at)."""
        ...

    async def update_task(self, task: Task) -> Task:
        """Compare-and-set on ``task.version``; returns the stored task (version + 1)."""
        ...

    async def delete_stopped_tasks(self, stopped_before: datetime) -> list[str]:
        """Delete tasks STOPPED before the given time; returns their ids."""
        ...

    async def node_reservations(self) -> dict[str, tuple[int, int]]:
        """(cpu units, MiB) reserved on each node by tasks not yet STOPPED."""
        ...

    async def placement_inputs(
        self, family: str, revision: int | None = None
    ) -> tuple[TaskDefinition | None, list[Node], dict[str, tuple[int, int]]]:
        """What placing a task needs, read in one transaction: the task definition (as
        ``get_task_definition``), ``list_nodes()`` and ``node_reservations()``."""
        ...

    # -- nodes -------------------------------------------------------------------------
    async def put_node(self, node: Node) -> Node:
        """Insert, or compare-and-set update when ``node.version`` > 0."""
        ...

    async def get_node(self, node_id: str) -> Node | None: ...

    async def list_nodes(self) -> list[Node]: ...

    # -- change feed -------------------------------------------------------------------
    async def last_change_seq(self) -> int: ...

    def known_change_seq(self) -> int:
        """The newest seq this process knows of (committed here or seen by a read of the
        feed), without I/O: a reader that takes it before reading some state can pass it
        to ``wait_for_change``/``changes_since`` and miss no later change."""
        ...

    async def changes_since(self, seq: int, limit: int = 1000) -> list[Change]:
        """Changes after ``seq`` in order, at most ``limit``; at least up to the seq the
        last ``wait_for_change`` returned. Served from memory, with ``value`` set, while
        every one of them was committed by this process."""
        ...

    async def wait_for_change(self, seq: int, timeout: float) -> int:
        """Return as soon as the feed is past ``seq`` (or after ``timeout``); returns the
        newest seq. Wakes at once for writes made through this Store object, within
        ``poll_interval`` for writes from other processes."""
        ...
