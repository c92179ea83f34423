"""Jobs, their runs (one per (job, tick): the exactly-once claim), events and the webhook
outbox.

A frozen copy on purpose: ``hatoba.store.schema`` may move on, this migration may not.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)

from hatoba.store.schema import UtcDateTime


def upgrade(conn: Connection) -> None:
    md = MetaData()
    seq = BigInteger().with_variant(Integer(), "sqlite")
    Table(
        "jobs",
        md,
        Column("job_name", String(255), primary_key=True),
        Column("version", Integer, nullable=False),
        Column("body", Text, nullable=False),
    )
    Table(
        "job_runs",
        md,
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
    Table(
        "job_events",
        md,
        Column("seq", seq, primary_key=True, autoincrement=True),
        Column("job_name", String(255), nullable=False),
        Column("at", UtcDateTime, nullable=False),
        Column("body", Text, nullable=False),
        Index("ix_job_events_job_name", "job_name", "seq"),
        sqlite_autoincrement=True,
    )
    Table(
        "job_notifications",
        md,
        Column("id", seq, primary_key=True, autoincrement=True),
        Column("job_name", String(255), nullable=False),
        Column("status", String(16), nullable=False),
        Column("next_attempt_at", UtcDateTime, nullable=False),
        Column("created_at", UtcDateTime, nullable=False),
        Column("body", Text, nullable=False),
        Index("ix_job_notifications_due", "status", "next_attempt_at"),
        Index("ix_job_notifications_job_name", "job_name"),
        sqlite_autoincrement=True,
    )
    md.create_all(conn)
