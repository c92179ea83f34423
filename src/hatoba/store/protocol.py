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

from hatoba.model.access import ApiToken, AuditEntry
from hatoba.model.job import Job, JobEvent, JobNotification, JobRun
from hatoba.model.node import Node
from hatoba.model.params import StoredParameter
from hatoba.model.scaling import (
    ScalableTarget,
    ScalingActivity,
    ScalingPolicy,
    ScheduledAction,
)
from hatoba.model.service import Service, ServiceEvent
from hatoba.model.task import DesiredStatus, LastStatus, Task
from hatoba.model.taskdef import TaskDefinition, TaskDefinitionStatus


@dataclass(frozen=True)
class Change:
    seq: int
    kind: str  # "task", "taskdef", "node", "param", "token", "service", "job", "jobrun",
    # "scaling" (a service's scalable target, policies or scheduled actions)
    key: str  # task id, "family:revision", node id, parameter name, token id, service name,
    # job name, job run id
    at: datetime
    # The object as this change committed it, when this process made the change (so a
    # reader needs no re-read); None when read back from the database, and for deletes.
    # Shared between readers: treat it as read-only.
    value: Task | TaskDefinition | Node | Service | Job | JobRun | None = field(
        default=None, compare=False, repr=False
    )


@dataclass
class NodeLoad:
    """What tasks not yet STOPPED hold on one node: cpu units, MiB, and how many tasks of
    each task group (``""`` for tasks without one)."""

    cpu: int = 0
    memory: int = 0
    groups: dict[str, int] = field(default_factory=dict)

    @property
    def tasks(self) -> int:
        return sum(self.groups.values())


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

    async def node_load(self) -> dict[str, NodeLoad]:
        """Per node (with any task not yet STOPPED): reserved cpu/memory and task counts
        per group."""
        ...

    async def placement_inputs(
        self, family: str, revision: int | None = None
    ) -> tuple[TaskDefinition | None, list[Node], dict[str, NodeLoad]]:
        """What placing a task needs, read in one transaction: the task definition (as
        ``get_task_definition``), ``list_nodes()`` and ``node_load()``."""
        ...

    # -- nodes -------------------------------------------------------------------------
    async def put_node(self, node: Node) -> Node:
        """Insert, or compare-and-set update when ``node.version`` > 0."""
        ...

    async def get_node(self, node_id: str) -> Node | None: ...

    async def list_nodes(self) -> list[Node]: ...

    # -- parameters ----------------------------------------------------------------------
    async def put_parameter(self, param: StoredParameter, *, overwrite: bool) -> StoredParameter:
        """Store a new version of ``param.name``, in one transaction: the version is 1 + the
        highest ever handed out for the name (``param.version`` is ignored; numbers are never
        reused, even after eviction or deletion). ``Conflict`` if the name exists and not
        ``overwrite``. ``param.labels`` move to the new version. At ``MAX_VERSIONS`` the
        oldest version is evicted, or ``Conflict`` (nothing written) if it keeps a label."""
        ...

    async def get_parameter_versions(self, name: str) -> list[StoredParameter]:
        """Every kept version, ascending; empty when the parameter does not exist."""
        ...

    async def list_parameters(self, path: str, *, recursive: bool) -> list[StoredParameter]:
        """The latest version of each parameter under ``path`` (``is_under``; ``/`` is the
        root), ordered by name."""
        ...

    async def label_parameter_version(
        self, name: str, version: int, labels: Sequence[str]
    ) -> StoredParameter:
        """Attach ``labels`` to a version, moving them off others (``relabel``); returns the
        labelled version. NotFound if the parameter or version is absent."""
        ...

    async def delete_parameter(self, name: str) -> int:
        """Delete every version; returns how many. NotFound when there were none."""
        ...

    async def secure_parameter_versions(self) -> list[StoredParameter]:
        """Every kept SecureString version (for key rotation), by name then version."""
        ...

    async def replace_ciphertext(self, name: str, version: int, old: str, new: str) -> bool:
        """Compare-and-set a version's ciphertext from ``old`` to ``new``; False (nothing
        written) if the version is gone or its ciphertext is no longer ``old``."""
        ...

    # -- tokens and audit ------------------------------------------------------------------
    async def put_token(self, token: ApiToken) -> ApiToken:
        """Insert; ``Conflict`` if a token has that name (or id) already."""
        ...

    async def get_token(self, token_id: str) -> ApiToken | None: ...

    async def list_tokens(self) -> list[ApiToken]:
        """Ordered by ``created_at`` (then token id)."""
        ...

    async def revoke_token(self, token_id: str, at: datetime) -> ApiToken:
        """Set ``revoked_at`` (kept as first set when already revoked). NotFound if absent."""
        ...

    async def append_audit(self, entry: AuditEntry) -> AuditEntry:
        """Append; returns the entry with its ``seq`` assigned (not on the change feed)."""
        ...

    async def append_audits(self, entries: Sequence[AuditEntry]) -> None:
        """Append several entries in one transaction (the audit writer's batches)."""
        ...

    async def list_audit(
        self, *, limit: int = 100, before_seq: int | None = None
    ) -> list[AuditEntry]:
        """Newest first, at most ``limit``; pass the last ``seq`` seen as ``before_seq`` for
        the next page."""
        ...

    # -- services ------------------------------------------------------------------------
    async def create_service(self, service: Service) -> Service:
        """Insert (version 1); ``Conflict`` if a service of that name exists."""
        ...

    async def get_service(self, name: str) -> Service | None: ...

    async def list_services(self) -> list[Service]:
        """Ordered by name."""
        ...

    async def update_service(self, service: Service) -> Service:
        """Compare-and-set on ``service.version``; returns the stored service (version + 1).
        ``NotFound`` if it was deleted."""
        ...

    async def delete_service(self, name: str) -> None:
        """Delete the service and its events (a ``service`` change with no value).
        NotFound if absent."""
        ...

    async def append_service_events(self, events: Sequence[ServiceEvent]) -> None:
        """Append in one transaction (ids assigned in order); keeps the newest
        ``MAX_EVENTS_KEPT`` per service."""
        ...

    async def list_service_events(
        self, name: str, *, limit: int = 100, after_id: int | None = None
    ) -> list[ServiceEvent]:
        """Newest first, at most ``limit``; with ``after_id`` only newer ones."""
        ...

    async def service_tasks(self, group: str, stopped_after: datetime | None) -> list[Task]:
        """The group's tasks not yet STOPPED, plus those STOPPED at or after
        ``stopped_after`` (all stopped ones when None), ordered by created_at."""
        ...

    # -- leases (leader election between control planes on one database) ----------------
    async def acquire_lease(self, name: str, holder: str, ttl: float, now: datetime) -> bool:
        """Take or renew lease ``name`` for ``holder`` until ``now + ttl`` seconds: True
        when it is free, expired (its expiry <= ``now``), or already ``holder``'s. Atomic
        across processes."""
        ...

    async def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up if ``holder`` has it (so another can take it at once)."""
        ...

    # -- jobs (scheduled and batch; see hatoba.model.job) --------------------------------
    async def create_job(self, job: Job) -> Job:
        """Insert (version 1); ``Conflict`` if a job of that name exists."""
        ...

    async def get_job(self, name: str) -> Job | None: ...

    async def list_jobs(self) -> list[Job]:
        """Ordered by name."""
        ...

    async def update_job(self, job: Job) -> Job:
        """Compare-and-set on ``job.version``; returns the stored job (version + 1).
        ``NotFound`` if it was deleted."""
        ...

    async def delete_job(self, name: str) -> None:
        """Delete the job with its runs, events and undelivered notifications, in one
        transaction (a ``job`` change with no value). NotFound if absent."""
        ...

    async def claim_tick(
        self, run: JobRun, notifications: Sequence[JobNotification] = ()
    ) -> JobRun | None:
        """Insert a scheduled run (``run.tick`` set) unless its (job, tick) was claimed
        before: the stored run (version 1), or None when it already was, by anyone, ever
        (nothing written then). The exactly-once guarantee of a tick, across crashes and
        across control planes on one database. ``notifications`` are queued with it."""
        ...

    async def create_job_run(
        self, run: JobRun, notifications: Sequence[JobNotification] = ()
    ) -> JobRun:
        """Insert a run (manual or chained: usually no tick), version 1, with
        ``notifications`` queued in the same transaction."""
        ...

    async def get_job_run(self, run_id: str) -> JobRun | None: ...

    async def update_job_run(
        self,
        run: JobRun,
        *,
        new_runs: Sequence[JobRun] = (),
        notifications: Sequence[JobNotification] = (),
    ) -> JobRun:
        """Compare-and-set on ``run.version``, and in the same transaction insert
        ``new_runs`` (chained runs) and queue ``notifications``: all or nothing. Returns the
        stored run (version + 1); ``Conflict`` / ``NotFound`` as usual."""
        ...

    async def list_job_runs(
        self, name: str, *, limit: int = 50, before: str | None = None
    ) -> list[JobRun]:
        """A job's runs, newest first (run ids sort by creation), at most ``limit``; pass
        the last ``runId`` seen as ``before`` for the next page."""
        ...

    async def active_job_runs(self, name: str | None = None) -> list[JobRun]:
        """Runs not finished (PENDING, RUNNING, RETRYING) of one job, or of every job,
        oldest first."""
        ...

    async def delete_job_runs(self, name: str, finished_before: datetime) -> int:
        """Delete a job's runs finished before the given time (retention); returns how
        many. Not on the change feed."""
        ...

    async def append_job_events(self, events: Sequence[JobEvent]) -> None:
        """Append in one transaction (ids assigned in order); keeps the newest
        ``MAX_JOB_EVENTS_KEPT`` per job."""
        ...

    async def list_job_events(
        self, name: str, *, limit: int = 100, after_id: int | None = None
    ) -> list[JobEvent]:
        """Newest first, at most ``limit``; with ``after_id`` only newer ones."""
        ...

    async def due_job_notifications(self, now: datetime, limit: int = 50) -> list[JobNotification]:
        """PENDING deliveries whose ``nextAttemptAt`` <= ``now``, earliest first."""
        ...

    async def next_job_notification_at(self) -> datetime | None:
        """The earliest ``nextAttemptAt`` of a PENDING delivery, None when none is left."""
        ...

    async def update_job_notification(self, notification: JobNotification) -> None:
        """Store a delivery's outcome (status, attempts, nextAttemptAt, lastError)."""
        ...

    async def list_job_notifications(self, name: str | None = None) -> list[JobNotification]:
        """Every delivery kept (of one job, or all), in the order queued."""
        ...

    async def delete_job_notifications(self, created_before: datetime) -> int:
        """Delete deliveries no longer PENDING queued before the given time."""
        ...

    # -- autoscaling (see hatoba.model.scaling) ------------------------------------------
    # Targets, policies and scheduled actions go on the change feed as kind ``scaling``
    # (key: the service name); activities do not.
    async def put_scalable_target(self, target: ScalableTarget) -> ScalableTarget:
        """Insert when ``target.version`` is 0 (``Conflict`` if the service has one), else
        compare-and-set (``Conflict``; ``NotFound`` if deregistered). Returns it stored."""
        ...

    async def get_scalable_target(self, service: str) -> ScalableTarget | None: ...

    async def list_scalable_targets(self) -> list[ScalableTarget]:
        """Ordered by service name."""
        ...

    async def delete_scalable_target(self, service: str) -> None:
        """Deregister: the target, its policies and scheduled actions, in one transaction
        (its activities stay). NotFound if absent."""
        ...

    async def put_scaling_policy(self, policy: ScalingPolicy) -> ScalingPolicy:
        """Insert or replace (by service and policy name). NotFound without a target."""
        ...

    async def list_scaling_policies(self, service: str | None = None) -> list[ScalingPolicy]:
        """Of one service, or all; ordered by service, then policy name."""
        ...

    async def delete_scaling_policy(self, service: str, name: str) -> None:
        """NotFound if absent."""
        ...

    async def put_scheduled_action(self, action: ScheduledAction) -> ScheduledAction:
        """Insert or replace (by service and action name). NotFound without a target."""
        ...

    async def list_scheduled_actions(self, service: str | None = None) -> list[ScheduledAction]:
        """Of one service, or all; ordered by service, then action name."""
        ...

    async def delete_scheduled_action(self, service: str, name: str) -> None:
        """NotFound if absent."""
        ...

    async def append_scaling_activities(self, activities: Sequence[ScalingActivity]) -> None:
        """Append in one transaction, in order; keeps the newest ``MAX_ACTIVITIES_KEPT``
        per service."""
        ...

    async def list_scaling_activities(
        self, service: str, *, limit: int = 50
    ) -> list[ScalingActivity]:
        """Newest first, at most ``limit``."""
        ...

    # -- change feed -------------------------------------------------------------------
    async def last_change_seq(self) -> int: ...

    def known_change_seq(self) -> int:
        """The newest seq this process knows of (committed here or seen by a read of the
        feed), without I/O: a reader that takes it before reading some state can pass it
        to ``wait_for_change``/``changes_since`` and miss no later change."""
        ...

    async def prune_changes(self, before: datetime) -> int:
        """Drop feed entries older than ``before``, always keeping the newest (so the
        feed's seq never goes back). Readers that fell further behind than that resync
        from state, as every level-triggered loop does anyway. Returns how many went."""
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
