"""Autoscaling: scalable targets, scaling policies, scheduled actions and activities.

A frozen copy on purpose: ``hatoba.store.schema`` may move on, this migration may not. It
depends on no other migration's tables.
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
        "scalable_targets",
        md,
        Column("service_name", String(255), primary_key=True),
        Column("version", Integer, nullable=False),
        Column("body", Text, nullable=False),
    )
    Table(
        "scaling_policies",
        md,
        Column("service_name", String(255), primary_key=True),
        Column("policy_name", String(255), primary_key=True),
        Column("body", Text, nullable=False),
    )
    Table(
        "scheduled_actions",
        md,
        Column("service_name", String(255), primary_key=True),
        Column("action_name", String(255), primary_key=True),
        Column("body", Text, nullable=False),
    )
    Table(
        "scaling_activities",
        md,
        Column(
            "seq",
            BigInteger().with_variant(Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        Column("service_name", String(255), nullable=False),
        Column("at", UtcDateTime, nullable=False),
        Column("body", Text, nullable=False),
        Index("ix_scaling_activities_service_name", "service_name", "seq"),
        sqlite_autoincrement=True,
    )
    md.create_all(conn)
