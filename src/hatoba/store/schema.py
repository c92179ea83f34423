"""The tables as the queries in ``sql.py`` see them today.

Migrations keep their own frozen copies (a migration must not change meaning when this file
changes); ``tests/store`` checks that a migrated database matches these definitions.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on both databases.

    SQLite has no time zone type: SQLAlchemy stores a fixed-width text form there, which sorts
    chronologically only if every value is in the same zone, so values are stored as naive UTC
    and handed back aware. Naive input is taken to be UTC already.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# SQLite only makes an INTEGER PRIMARY KEY the rowid (and only then honours AUTOINCREMENT).
SeqInteger = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

task_definitions = Table(
    "task_definitions",
    metadata,
    Column("family", String(255), primary_key=True),
    Column("revision", Integer, primary_key=True),
    Column("status", String(32), nullable=False),
    Column("registered_at", UtcDateTime, nullable=False),
    Column("body", Text, nullable=False),
)

# One row per family ever registered: the highest revision handed out, so that revisions are
# never reused even when old revisions are deleted.
families = Table(
    "families",
    metadata,
    Column("family", String(255), primary_key=True),
    Column("last_revision", Integer, nullable=False),
)

tasks = Table(
    "tasks",
    metadata,
    Column("task_id", String(64), primary_key=True),
    Column("node_id", String(255)),
    Column("family", String(255), nullable=False),
    Column("desired_status", String(32), nullable=False),
    Column("last_status", String(32), nullable=False),
    Column("started_by", String(255)),
    Column("group_name", String(255)),
    Column("created_at", UtcDateTime, nullable=False),
    Column("stopped_at", UtcDateTime),
    Column("cpu", Integer, nullable=False),
    Column("memory", Integer, nullable=False),
    Column("version", Integer, nullable=False),
    Column("body", Text, nullable=False),
    Index("ix_tasks_node_id", "node_id"),
    Index("ix_tasks_family", "family"),
    Index("ix_tasks_created_at", "created_at"),
    Index("ix_tasks_started_by", "started_by"),
    Index("ix_tasks_group_name", "group_name"),
    Index("ix_tasks_stopped_at", "stopped_at"),
    Index(
        "ix_tasks_live",
        "node_id",
        "cpu",
        "memory",
        sqlite_where=text("last_status <> 'STOPPED'"),
        postgresql_where=text("last_status <> 'STOPPED'"),
    ),
)

nodes = Table(
    "nodes",
    metadata,
    Column("node_id", String(255), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("body", Text, nullable=False),
)

changes = Table(
    "changes",
    metadata,
    Column("seq", SeqInteger, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("key", String(1024), nullable=False),  # 1024: parameter names reach 1011
    Column("at", UtcDateTime, nullable=False),
    sqlite_autoincrement=True,
)

# One row per version of a parameter (SSM keeps the latest 100). ``body`` is the
# ``StoredParameter`` as JSON, labels included. The extra name index uses text_pattern_ops on
# PostgreSQL so that get-by-path's ``LIKE 'prefix%'`` can use it (the primary key's index
# serves equality only under a non-C collation); SQLite ignores the option.
parameters = Table(
    "parameters",
    metadata,
    Column("name", String(1024), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("body", Text, nullable=False),
    Index("ix_parameters_name", "name", postgresql_ops={"name": "text_pattern_ops"}),
)

# One row per parameter name ever written: the highest version handed out, so that versions
# are never reused, after eviction of the oldest or after the parameter is deleted. Its row
# is also the lock that serialises writes to one parameter.
parameter_names = Table(
    "parameter_names",
    metadata,
    Column("name", String(1024), primary_key=True),
    Column("last_version", Integer, nullable=False),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("token_id", String(64), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("body", Text, nullable=False),
    Index("ux_api_tokens_name", "name", unique=True),
)

audit = Table(
    "audit",
    metadata,
    Column("seq", SeqInteger, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime, nullable=False),
    Column("body", Text, nullable=False),
    sqlite_autoincrement=True,
)

# Services (``Service`` as JSON). Tasks point to theirs through ``tasks.group_name``.
services = Table(
    "services",
    metadata,
    Column("service_name", String(255), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("body", Text, nullable=False),
)

# A service's event log (``ServiceEvent`` as JSON; its id is ``seq``), the newest
# ``MAX_EVENTS_KEPT`` per service. Not on the change feed.
service_events = Table(
    "service_events",
    metadata,
    Column("seq", SeqInteger, primary_key=True, autoincrement=True),
    Column("service_name", String(255), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("body", Text, nullable=False),
    Index("ix_service_events_service_name", "service_name", "seq"),
    sqlite_autoincrement=True,
)

# Leader election between control planes on one database: who holds ``name`` until when.
# ``version`` counts the acquisitions (takes and renewals). Not on the change feed.
leases = Table(
    "leases",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("holder", String(255), nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("version", Integer, nullable=False),
)

# Jobs (``Job`` as JSON), on the change feed as kind ``job``.
jobs = Table(
    "jobs",
    metadata,
    Column("job_name", String(255), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("body", Text, nullable=False),
)

# Job runs (``JobRun`` as JSON), on the change feed as kind ``jobrun``. The unique
# (job_name, tick) index is the exactly-once claim of a scheduled tick (manual and chain runs
# have no tick, and NULLs never collide). Run ids sort by creation time (history pages by
# them); ``ix_job_runs_active`` holds only runs not yet finished.
job_runs = Table(
    "job_runs",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("job_name", String(255), nullable=False),
    Column("tick", UtcDateTime),
    Column("status", String(16), nullable=False),
    Column("finished_at", UtcDateTime),
    Column("version", Integer, nullable=False),
    Column("body", Text, nullable=False),
    Index("ux_job_runs_tick", "job_name", "tick", unique=True),
    Index("ix_job_runs_job", "job_name", "run_id"),
    Index("ix_job_runs_finished_at", "finished_at"),
    Index(
        "ix_job_runs_active",
        "job_name",
        sqlite_where=text("finished_at IS NULL"),
        postgresql_where=text("finished_at IS NULL"),
    ),
)

# A job's event log (``JobEvent`` as JSON; its id is ``seq``), the newest
# ``MAX_JOB_EVENTS_KEPT`` per job. Not on the change feed.
job_events = Table(
    "job_events",
    metadata,
    Column("seq", SeqInteger, primary_key=True, autoincrement=True),
    Column("job_name", String(255), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("body", Text, nullable=False),
    Index("ix_job_events_job_name", "job_name", "seq"),
    sqlite_autoincrement=True,
)

# The webhook outbox (``JobNotification`` as JSON), written with the run change it reports.
# Not on the change feed.
job_notifications = Table(
    "job_notifications",
    metadata,
    Column("id", SeqInteger, primary_key=True, autoincrement=True),
    Column("job_name", String(255), nullable=False),
    Column("status", String(16), nullable=False),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("body", Text, nullable=False),
    Index("ix_job_notifications_due", "status", "next_attempt_at"),
    Index("ix_job_notifications_job_name", "job_name"),
    sqlite_autoincrement=True,
)

# Autoscaling (``hatoba.model.scaling`` as JSON): one scalable target per service
# (compare-and-set), its policies and scheduled actions (keyed by service and name), all on the
# change feed as kind ``scaling`` (key: the service); and its activity log (an activity's
# order is ``seq``), the newest ``MAX_ACTIVITIES_KEPT`` per service, not on the feed.
scalable_targets = Table(
    "scalable_targets",
    metadata,
    Column("service_name", String(255), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("body", Text, nullable=False),
)

scaling_policies = Table(
    "scaling_policies",
    metadata,
    Column("service_name", String(255), primary_key=True),
    Column("policy_name", String(255), primary_key=True),
    Column("body", Text, nullable=False),
)

scheduled_actions = Table(
    "scheduled_actions",
    metadata,
    Column("service_name", String(255), primary_key=True),
    Column("action_name", String(255), primary_key=True),
    Column("body", Text, nullable=False),
)

scaling_activities = Table(
    "scaling_activities",
    metadata,
    Column("seq", SeqInteger, primary_key=True, autoincrement=True),
    Column("service_name", String(255), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("body", Text, nullable=False),
    Index("ix_scaling_activities_service_name", "service_name", "seq"),
    sqlite_autoincrement=True,
)

schema_migrations = Table(
    "schema_migrations",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("applied_at", UtcDateTime, nullable=False),
)
