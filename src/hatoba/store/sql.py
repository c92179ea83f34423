"""``SqlStore``: the ``Store`` protocol on SQLAlchemy Core, for SQLite or PostgreSQL.

Each object is kept as its JSON body (TEXT) next to the few columns queries filter on, so the
model can grow without a migration per field. Mutable rows carry a ``version`` for
compare-and-set. Every write appends to ``changes`` in the same transaction, so the feed never
mentions a write that did not commit and never misses one that did.

Each method is one transaction, written once as a sync function of a ``Tx`` and handed to a
runner (see ``runner.py`` for where it runs and why). Hot-path statements are built once at
import: building a statement costs about as much as executing it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, bindparam, delete, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from hatoba.model.access import ApiToken, AuditEntry
from hatoba.model.base import utcnow
from hatoba.model.errors import Conflict, NotFound
from hatoba.model.job import Job, JobEvent, JobNotification, JobRun
from hatoba.model.node import Node
from hatoba.model.params import StoredParameter
from hatoba.model.service import Service, ServiceEvent
from hatoba.model.task import DesiredStatus, LastStatus, Task
from hatoba.model.taskdef import TaskDefinition, TaskDefinitionStatus
from hatoba.store import migrations, sql_jobs, sql_params, sql_services
from hatoba.store.engine import backend
from hatoba.store.feed import ChangeNotifier
from hatoba.store.protocol import Change, NodeLoad, Store
from hatoba.store.runner import MIGRATION_LOCK, PostgresRunner, SqliteRunner, Tx
from hatoba.store.schema import changes, families, nodes, task_definitions, tasks
from hatoba.store.sql_scaling import ScalingStoreMethods

_GET_TASK = select(tasks.c.body).where(tasks.c.task_id == bindparam("k"))
_INSERT_TASK = tasks.insert()
_UPDATE_TASK = update(tasks).where(
    tasks.c.task_id == bindparam("k"), tasks.c.version == bindparam("expected")
)
_GET_NODE = select(nodes.c.body).where(nodes.c.node_id == bindparam("k"))
_INSERT_NODE = nodes.insert()
_UPDATE_NODE = update(nodes).where(
    nodes.c.node_id == bindparam("k"), nodes.c.version == bindparam("expected")
)
_TASK_VERSION = select(tasks.c.version).where(tasks.c.task_id == bindparam("k"))
_NODE_VERSION = select(nodes.c.version).where(nodes.c.node_id == bindparam("k"))
_LAST_SEQ = select(func.coalesce(func.max(changes.c.seq), 0))
_GET_TASKDEF = select(task_definitions.c.body).where(
    task_definitions.c.family == bindparam("family"),
    task_definitions.c.revision == bindparam("revision"),
)
_GET_LATEST_TASKDEF = (
    select(task_definitions.c.body)
    .where(
        task_definitions.c.family == bindparam("family"),
        task_definitions.c.status == TaskDefinitionStatus.ACTIVE.value,
    )
    .order_by(task_definitions.c.revision.desc())
    .limit(1)
)
_LIST_NODES = select(nodes.c.body).order_by(nodes.c.node_id)
_RESERVATIONS = (
    select(tasks.c.node_id, func.sum(tasks.c.cpu), func.sum(tasks.c.memory))
    # a literal, not a bound parameter: SQLite uses the partial index ix_tasks_live only
    # when the query's WHERE matches the index's
    .where(text("last_status <> 'STOPPED'"), tasks.c.node_id.is_not(None))
    .group_by(tasks.c.node_id)
)
_LOAD = (
    select(
        tasks.c.node_id,
        tasks.c.group_name,
        func.sum(tasks.c.cpu),
        func.sum(tasks.c.memory),
        func.count(),
    )
    .where(text("last_status <> 'STOPPED'"), tasks.c.node_id.is_not(None))
    .group_by(tasks.c.node_id, tasks.c.group_name)
)


class SqlStore(ScalingStoreMethods):  # autoscaling methods: sql_scaling.py
    """The ``Store`` protocol for a database URL (``sqlite[+driver]:///path`` or
    ``postgresql[+asyncpg]://...``). ``poll_interval`` bounds how late ``wait_for_change``
    notices writes made by other processes; ``clock`` stamps registrations and feed rows."""

    def __init__(
        self,
        url: str,
        *,
        poll_interval: float = 0.5,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.poll_interval = poll_interval
        self._notifier = ChangeNotifier()
        self._polled_at = -float("inf")  # time.monotonic() of the last read of the feed's seq
        kind = backend(url)
        if kind == "sqlite":
            self._runner: SqliteRunner | PostgresRunner = SqliteRunner(
                url, clock, self._notifier.publish
            )
        elif kind == "postgresql":
            self._runner = PostgresRunner(url, clock, self._notifier.publish)
        else:
            raise ValueError(f"unsupported database {kind!r}: use sqlite or postgresql")
        self.dialect = kind

    async def migrate(self) -> None:
        def run(tx: Tx) -> None:
            if tx.postgres:  # SQLite: BEGIN IMMEDIATE already holds the write lock
                tx.conn.execute(select(func.pg_advisory_xact_lock(MIGRATION_LOCK)))
            migrations.apply_pending(tx.conn, tx.now)

        await self._runner.run(run, write=True)

    async def close(self) -> None:
        await self._runner.close()

    # -- task definitions ----------------------------------------------------------------
    async def register_task_definition(self, taskdef: TaskDefinition) -> TaskDefinition:
        dialect_insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        bump = (
            dialect_insert(families)
            .values(family=taskdef.family, last_revision=1)
            .on_conflict_do_update(
                index_elements=[families.c.family],
                set_={"last_revision": families.c.last_revision + 1},
            )
            .returning(families.c.last_revision)
        )

        def run(tx: Tx) -> TaskDefinition:
            revision = int(tx.conn.execute(bump).scalar_one())
            stored = taskdef.model_copy(
                update={
                    "revision": revision,
                    "status": TaskDefinitionStatus.ACTIVE,
                    "registered_at": tx.now,
                    "deregistered_at": None,
                }
            )
            tx.conn.execute(
                task_definitions.insert().values(
                    family=stored.family,
                    revision=revision,
                    status=stored.status.value,
                    registered_at=tx.now,
                    body=_dump(stored),
                )
            )
            tx.record("taskdef", f"{stored.family}:{revision}", stored)
            return stored

        return await self._runner.run(run, write=True)

    async def get_task_definition(
        self, family: str, revision: int | None = None
    ) -> TaskDefinition | None:
        body = await self._runner.run(lambda tx: _taskdef_body(tx, family, revision), write=False)
        return None if body is None else TaskDefinition.model_validate_json(body)

    async def placement_inputs(
        self, family: str, revision: int | None = None
    ) -> tuple[TaskDefinition | None, list[Node], dict[str, NodeLoad]]:
        def run(tx: Tx) -> tuple[str | None, Sequence[str], dict[str, NodeLoad]]:
            body = _taskdef_body(tx, family, revision)
            if body is None:
                return None, [], {}
            return body, tx.conn.scalars(_LIST_NODES).all(), _load(tx)

        body, node_bodies, load = await self._runner.run(run, write=False)
        if body is None:
            return None, [], {}
        td = TaskDefinition.model_validate_json(body)
        return td, [Node.model_validate_json(b) for b in node_bodies], load

    async def list_task_definitions(
        self, family: str | None = None, status: TaskDefinitionStatus | None = None
    ) -> list[TaskDefinition]:
        stmt = select(task_definitions.c.body).order_by(
            task_definitions.c.family, task_definitions.c.revision
        )
        if family is not None:
            stmt = stmt.where(task_definitions.c.family == family)
        if status is not None:
            stmt = stmt.where(task_definitions.c.status == status.value)
        bodies = await self._runner.run(lambda tx: tx.conn.scalars(stmt).all(), write=False)
        return [TaskDefinition.model_validate_json(b) for b in bodies]

    async def set_task_definition_status(
        self, family: str, revision: int, status: TaskDefinitionStatus
    ) -> TaskDefinition:
        key = (task_definitions.c.family == family) & (task_definitions.c.revision == revision)

        def run(tx: Tx) -> TaskDefinition:
            body = tx.conn.scalar(select(task_definitions.c.body).where(key))
            if body is None:
                raise NotFound(f"task definition {family}:{revision} not found")
            current = TaskDefinition.model_validate_json(body)
            if current.status == status:
                return current
            deregistered_at = None
            if status != TaskDefinitionStatus.ACTIVE:
                deregistered_at = current.deregistered_at or tx.now
            stored = current.model_copy(
                update={"status": status, "deregistered_at": deregistered_at}
            )
            tx.conn.execute(
                update(task_definitions).where(key).values(status=status.value, body=_dump(stored))
            )
            tx.record("taskdef", f"{family}:{revision}", stored)
            return stored

        return await self._runner.run(run, write=True)

    # -- tasks -----------------------------------------------------------------------------
    async def create_task(self, task: Task) -> Task:
        stored = task.model_copy(update={"version": 1})
        row = _task_row(stored)

        def run(tx: Tx) -> None:
            tx.conn.execute(_INSERT_TASK, row)
            tx.record("task", task.task_id, stored)

        try:
            await self._runner.run(run, write=True)
        except IntegrityError as e:
            raise Conflict(f"task {task.task_id} already exists") from e
        return stored

    async def get_task(self, task_id: str) -> Task | None:
        body = await self._runner.run(
            lambda tx: tx.conn.scalar(_GET_TASK, {"k": task_id}), write=False
        )
        return None if body is None else Task.model_validate_json(body)

    async def find_tasks_by_prefix(self, prefix: str, limit: int = 2) -> list[Task]:
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        stmt = (
            select(tasks.c.body)
            .where(tasks.c.task_id.like(escaped + "%", escape="\\"))
            .order_by(tasks.c.task_id)
            .limit(limit)
        )
        bodies = await self._runner.run(lambda tx: tx.conn.scalars(stmt).all(), write=False)
        return [Task.model_validate_json(b) for b in bodies]

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
        where: list[ColumnElement[bool]] = []
        if node_id is not None:
            where.append(tasks.c.node_id == node_id)
        if family is not None:
            where.append(tasks.c.family == family)
        if desired_status is not None:
            where.append(tasks.c.desired_status == desired_status.value)
        if last_statuses is not None:
            where.append(tasks.c.last_status.in_([s.value for s in last_statuses]))
        if started_by is not None:
            where.append(tasks.c.started_by == started_by)
        if group is not None:
            where.append(tasks.c.group_name == group)
        stmt = (
            select(tasks.c.body)
            .where(*where)
            .order_by(tasks.c.created_at.desc(), tasks.c.task_id.desc())
        )
        if limit is not None:
            stmt = stmt.limit(limit)
        bodies = await self._runner.run(lambda tx: tx.conn.scalars(stmt).all(), write=False)
        return [Task.model_validate_json(b) for b in bodies]

    async def update_task(self, task: Task) -> Task:
        stored = task.model_copy(update={"version": task.version + 1})
        row = _task_row(stored) | {"k": task.task_id, "expected": task.version}

        def run(tx: Tx) -> None:
            if tx.conn.execute(_UPDATE_TASK, row).rowcount == 0:
                _raise_lost_race(tx, "task", task.task_id, task.version)
            tx.record("task", task.task_id, stored)

        await self._runner.run(run, write=True)
        return stored

    async def delete_stopped_tasks(self, stopped_before: datetime) -> list[str]:
        stmt = (
            delete(tasks)
            .where(
                tasks.c.last_status == LastStatus.STOPPED.value,
                tasks.c.stopped_at < stopped_before,
            )
            .returning(tasks.c.task_id)
        )

        def run(tx: Tx) -> list[str]:
            deleted = sorted(tx.conn.execute(stmt).scalars().all())
            for task_id in deleted:
                tx.record("task", task_id)
            return deleted

        return await self._runner.run(run, write=True)

    # -- nodes -------------------------------------------------------------------------------
    async def put_node(self, node: Node) -> Node:
        stored = node.model_copy(update={"version": node.version + 1})
        row = {"node_id": node.node_id, "version": stored.version, "body": _dump(stored)}

        def run(tx: Tx) -> None:
            if node.version == 0:
                tx.conn.execute(_INSERT_NODE, row)
            elif (
                tx.conn.execute(
                    _UPDATE_NODE, row | {"k": node.node_id, "expected": node.version}
                ).rowcount
                == 0
            ):
                _raise_lost_race(tx, "node", node.node_id, node.version)
            tx.record("node", node.node_id, stored)

        try:
            await self._runner.run(run, write=True)
        except IntegrityError as e:
            raise Conflict(f"node {node.node_id} already exists") from e
        return stored

    async def get_node(self, node_id: str) -> Node | None:
        body = await self._runner.run(
            lambda tx: tx.conn.scalar(_GET_NODE, {"k": node_id}), write=False
        )
        return None if body is None else Node.model_validate_json(body)

    async def node_reservations(self) -> dict[str, tuple[int, int]]:
        return await self._runner.run(_reservations, write=False)

    async def node_load(self) -> dict[str, NodeLoad]:
        return await self._runner.run(_load, write=False)

    async def list_nodes(self) -> list[Node]:
        bodies = await self._runner.run(lambda tx: tx.conn.scalars(_LIST_NODES).all(), write=False)
        return [Node.model_validate_json(b) for b in bodies]

    # -- parameters (transaction bodies in sql_params.py) ------------------------------------
    async def put_parameter(self, param: StoredParameter, *, overwrite: bool) -> StoredParameter:
        return await self._runner.run(
            lambda tx: sql_params.put_parameter(tx, param, overwrite), write=True
        )

    async def get_parameter_versions(self, name: str) -> list[StoredParameter]:
        return await self._runner.run(
            lambda tx: sql_params.get_parameter_versions(tx, name), write=False
        )

    async def list_parameters(self, path: str, *, recursive: bool) -> list[StoredParameter]:
        return await self._runner.run(
            lambda tx: sql_params.list_parameters(tx, path, recursive), write=False
        )

    async def label_parameter_version(
        self, name: str, version: int, labels: Sequence[str]
    ) -> StoredParameter:
        return await self._runner.run(
            lambda tx: sql_params.label_parameter_version(tx, name, version, labels), write=True
        )

    async def delete_parameter(self, name: str) -> int:
        return await self._runner.run(lambda tx: sql_params.delete_parameter(tx, name), write=True)

    async def secure_parameter_versions(self) -> list[StoredParameter]:
        return await self._runner.run(sql_params.secure_parameter_versions, write=False)

    async def replace_ciphertext(self, name: str, version: int, old: str, new: str) -> bool:
        return await self._runner.run(
            lambda tx: sql_params.replace_ciphertext(tx, name, version, old, new), write=True
        )

    # -- tokens and audit ----------------------------------------------------------------------
    async def put_token(self, token: ApiToken) -> ApiToken:
        try:
            return await self._runner.run(lambda tx: sql_params.put_token(tx, token), write=True)
        except IntegrityError as e:  # a concurrent insert won between check and insert
            raise Conflict(f"a token named {token.name} already exists") from e

    async def get_token(self, token_id: str) -> ApiToken | None:
        return await self._runner.run(lambda tx: sql_params.get_token(tx, token_id), write=False)

    async def list_tokens(self) -> list[ApiToken]:
        return await self._runner.run(sql_params.list_tokens, write=False)

    async def revoke_token(self, token_id: str, at: datetime) -> ApiToken:
        return await self._runner.run(
            lambda tx: sql_params.revoke_token(tx, token_id, at), write=True
        )

    async def append_audit(self, entry: AuditEntry) -> AuditEntry:
        return await self._runner.run(lambda tx: sql_params.append_audit(tx, entry), write=True)

    async def append_audits(self, entries: Sequence[AuditEntry]) -> None:
        await self._runner.run(lambda tx: sql_params.append_audits(tx, entries), write=True)

    async def list_audit(
        self, *, limit: int = 100, before_seq: int | None = None
    ) -> list[AuditEntry]:
        return await self._runner.run(
            lambda tx: sql_params.list_audit(tx, limit, before_seq), write=False
        )

    # -- services, their events and tasks (transaction bodies in sql_services.py) ----------
    async def create_service(self, service: Service) -> Service:
        try:
            return await self._runner.run(
                lambda tx: sql_services.create_service(tx, service), write=True
            )
        except IntegrityError as e:
            raise Conflict(f"service {service.service_name} already exists") from e

    async def get_service(self, name: str) -> Service | None:
        return await self._runner.run(lambda tx: sql_services.get_service(tx, name), write=False)

    async def list_services(self) -> list[Service]:
        return await self._runner.run(sql_services.list_services, write=False)

    async def update_service(self, service: Service) -> Service:
        return await self._runner.run(
            lambda tx: sql_services.update_service(tx, service), write=True
        )

    async def delete_service(self, name: str) -> None:
        await self._runner.run(lambda tx: sql_services.delete_service(tx, name), write=True)

    async def append_service_events(self, events: Sequence[ServiceEvent]) -> None:
        await self._runner.run(
            lambda tx: sql_services.append_service_events(tx, events), write=True
        )

    async def list_service_events(
        self, name: str, *, limit: int = 100, after_id: int | None = None
    ) -> list[ServiceEvent]:
        return await self._runner.run(
            lambda tx: sql_services.list_service_events(tx, name, limit, after_id), write=False
        )

    async def service_tasks(self, group: str, stopped_after: datetime | None) -> list[Task]:
        return await self._runner.run(
            lambda tx: sql_services.service_tasks(tx, group, stopped_after), write=False
        )

    # -- leases ----------------------------------------------------------------------------------
    async def acquire_lease(self, name: str, holder: str, ttl: float, now: datetime) -> bool:
        return await self._runner.run(
            lambda tx: sql_services.acquire_lease(tx, name, holder, ttl, now), write=True
        )

    async def release_lease(self, name: str, holder: str) -> None:
        await self._runner.run(lambda tx: sql_services.release_lease(tx, name, holder), write=True)

    # -- jobs, runs, events, webhook outbox (transaction bodies in sql_jobs.py) ------------
    async def create_job(self, job: Job) -> Job:
        try:
            return await self._runner.run(lambda tx: sql_jobs.create_job(tx, job), write=True)
        except IntegrityError as e:
            raise Conflict(f"job {job.job_name} already exists") from e

    async def get_job(self, name: str) -> Job | None:
        return await self._runner.run(lambda tx: sql_jobs.get_job(tx, name), write=False)

    async def list_jobs(self) -> list[Job]:
        return await self._runner.run(sql_jobs.list_jobs, write=False)

    async def update_job(self, job: Job) -> Job:
        return await self._runner.run(lambda tx: sql_jobs.update_job(tx, job), write=True)

    async def delete_job(self, name: str) -> None:
        await self._runner.run(lambda tx: sql_jobs.delete_job(tx, name), write=True)

    async def claim_tick(
        self, run: JobRun, notifications: Sequence[JobNotification] = ()
    ) -> JobRun | None:
        return await self._runner.run(
            lambda tx: sql_jobs.claim_tick(tx, run, notifications), write=True
        )

    async def create_job_run(
        self, run: JobRun, notifications: Sequence[JobNotification] = ()
    ) -> JobRun:
        try:
            return await self._runner.run(
                lambda tx: sql_jobs.create_job_run(tx, run, notifications), write=True
            )
        except IntegrityError as e:
            raise Conflict(f"job run {run.run_id} already exists") from e

    async def get_job_run(self, run_id: str) -> JobRun | None:
        return await self._runner.run(lambda tx: sql_jobs.get_job_run(tx, run_id), write=False)

    async def update_job_run(
        self,
        run: JobRun,
        *,
        new_runs: Sequence[JobRun] = (),
        notifications: Sequence[JobNotification] = (),
    ) -> JobRun:
        try:
            return await self._runner.run(
                lambda tx: sql_jobs.update_job_run(tx, run, new_runs, notifications), write=True
            )
        except IntegrityError as e:
            raise Conflict(f"a chained run of {run.run_id} already exists") from e

    async def list_job_runs(
        self, name: str, *, limit: int = 50, before: str | None = None
    ) -> list[JobRun]:
        return await self._runner.run(
            lambda tx: sql_jobs.list_job_runs(tx, name, limit, before), write=False
        )

    async def active_job_runs(self, name: str | None = None) -> list[JobRun]:
        return await self._runner.run(lambda tx: sql_jobs.active_job_runs(tx, name), write=False)

    async def delete_job_runs(self, name: str, finished_before: datetime) -> int:
        return await self._runner.run(
            lambda tx: sql_jobs.delete_job_runs(tx, name, finished_before), write=True
        )

    async def append_job_events(self, events: Sequence[JobEvent]) -> None:
        await self._runner.run(lambda tx: sql_jobs.append_job_events(tx, events), write=True)

    async def list_job_events(
        self, name: str, *, limit: int = 100, after_id: int | None = None
    ) -> list[JobEvent]:
        return await self._runner.run(
            lambda tx: sql_jobs.list_job_events(tx, name, limit, after_id), write=False
        )

    async def due_job_notifications(self, now: datetime, limit: int = 50) -> list[JobNotification]:
        return await self._runner.run(
            lambda tx: sql_jobs.due_job_notifications(tx, now, limit), write=False
        )

    async def next_job_notification_at(self) -> datetime | None:
        return await self._runner.run(sql_jobs.next_job_notification_at, write=False)

    async def update_job_notification(self, notification: JobNotification) -> None:
        await self._runner.run(
            lambda tx: sql_jobs.update_job_notification(tx, notification), write=True
        )

    async def list_job_notifications(self, name: str | None = None) -> list[JobNotification]:
        return await self._runner.run(
            lambda tx: sql_jobs.list_job_notifications(tx, name), write=False
        )

    async def delete_job_notifications(self, created_before: datetime) -> int:
        return await self._runner.run(
            lambda tx: sql_jobs.delete_job_notifications(tx, created_before), write=True
        )

    # -- change feed ---------------------------------------------------------------------------
    async def last_change_seq(self) -> int:
        self._polled_at = time.monotonic()
        seq: int = await self._runner.run(
            lambda tx: tx.conn.execute(_LAST_SEQ).scalar_one(), write=False
        )
        self._notifier.publish(seq)  # wakes local waiters for other processes' writes too
        return max(seq, self._notifier.seq)

    async def prune_changes(self, before: datetime) -> int:
        newest = select(func.max(changes.c.seq)).scalar_subquery()
        stmt = delete(changes).where(changes.c.at < before, changes.c.seq < newest)
        deleted: int = await self._runner.run(lambda tx: tx.conn.execute(stmt).rowcount, write=True)
        return deleted

    def known_change_seq(self) -> int:
        return self._notifier.seq

    async def changes_since(self, seq: int, limit: int = 1000) -> list[Change]:
        local = self._notifier.since(seq, limit)
        if local is not None:
            return local
        stmt = select(changes).where(changes.c.seq > seq).order_by(changes.c.seq).limit(limit)
        rows = await self._runner.run(lambda tx: tx.conn.execute(stmt).all(), write=False)
        return [Change(seq=r.seq, kind=r.kind, key=r.key, at=r.at) for r in rows]

    async def wait_for_change(self, seq: int, timeout: float) -> int:
        """In-process writes wake waiters at once. Other processes' writes are found by
        reading the feed's newest seq, at most once per ``poll_interval`` for all waiters
        together (any read publishes what it finds to every waiter), not on every call."""
        deadline = time.monotonic() + timeout
        while True:
            if self._notifier.seq > seq:
                return self._notifier.seq
            event = self._notifier.snapshot()  # before the read, so no publish slips past
            if time.monotonic() - self._polled_at >= self.poll_interval:
                newest = await self.last_change_seq()
                if newest > seq:
                    return newest
            now = time.monotonic()
            remaining = deadline - now
            if remaining <= 0:
                return max(seq, self._notifier.seq)
            next_poll = self._polled_at + self.poll_interval - now
            await self._notifier.wait(event, max(0.0, min(next_poll, remaining)))


def _taskdef_body(tx: Tx, family: str, revision: int | None) -> str | None:
    """A revision's stored body, or with ``revision=None`` the latest ACTIVE one's."""
    if revision is None:
        return tx.conn.scalar(_GET_LATEST_TASKDEF, {"family": family})
    return tx.conn.scalar(_GET_TASKDEF, {"family": family, "revision": revision})


def _reservations(tx: Tx) -> dict[str, tuple[int, int]]:
    return {
        str(node): (int(cpu or 0), int(mem or 0))
        for node, cpu, mem in tx.conn.execute(_RESERVATIONS).all()
    }


def _load(tx: Tx) -> dict[str, NodeLoad]:
    out: dict[str, NodeLoad] = {}
    for node, group, cpu, mem, count in tx.conn.execute(_LOAD).all():
        load = out.setdefault(str(node), NodeLoad())
        load.cpu += int(cpu or 0)
        load.memory += int(mem or 0)
        key = group or ""
        load.groups[key] = load.groups.get(key, 0) + int(count)
    return out


def _dump(model: TaskDefinition | Task | Node) -> str:
    if isinstance(model, TaskDefinition):
        # only what was given: an export after a reload must not spell out defaults
        return model.model_dump_json(by_alias=True, exclude_unset=True)
    return model.model_dump_json(by_alias=True)


def _task_row(task: Task) -> dict[str, Any]:
    return {
        "task_id": task.task_id,
        "node_id": task.node_id,
        "family": task.family,
        "desired_status": task.desired_status.value,
        "last_status": task.last_status.value,
        "started_by": task.started_by,
        "group_name": task.group,
        "created_at": task.created_at,
        "stopped_at": task.stopped_at,
        "cpu": task.cpu,
        "memory": task.memory,
        "version": task.version,
        "body": _dump(task),
    }


def _raise_lost_race(tx: Tx, kind: str, key: str, expected: int) -> None:
    """A compare-and-set matched no row: tell a deleted object from a newer version."""
    current = tx.conn.scalar(_TASK_VERSION if kind == "task" else _NODE_VERSION, {"k": key})
    if current is None:
        raise NotFound(f"{kind} {key} not found")
    raise Conflict(f"{kind} {key} changed since it was read (version {expected}, now {current})")


if TYPE_CHECKING:

    def _conforms(store: SqlStore) -> Store:
        """mypy proves here that ``SqlStore`` satisfies the ``Store`` protocol."""
        return store
