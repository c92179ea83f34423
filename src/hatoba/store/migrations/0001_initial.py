"""The first schema: task definitions, family counters, tasks, nodes and the change feed.

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
)

from hatoba.store.schema import UtcDateTime


def upgrade(conn: Connection) -> None:
    md = MetaData()
    Table(
        "task_definitions",
        md,
        Column("family", String(255), primary_key=True),
        Column("revision", Integer, primary_key=True),
        Column("status", String(32), nullable=False),
        Column("registered_at", UtcDateTime, nullable=False),
        Column("body", Text, nullable=False),
    )
    Table(
        "families",
        md,
        Column("family", String(255), primary_key=True),
        Column("last_revision", Integer, nullable=False),
    )
    Table(
        "tasks",
        md,
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
    )
    Table(
        "nodes",
        md,
        Column("node_id", String(255), primary_key=True),
        Column("version", Integer, nullable=False),
        Column("body", Text, nullable=False),
    )
    Table(
        "changes",
        md,
        Column(
            "seq",
            BigInteger().with_variant(Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        Column("kind", String(16), nullable=False),
        Column("key", String(255), nullable=False),
        Column("at", UtcDateTime, nullable=False),
        sqlite_autoincrement=True,
    )
    md.create_all(conn)
