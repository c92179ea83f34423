"""Services, their event logs, and leases (leader election between control planes).

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
        "services",
        md,
        Column("service_name", String(255), primary_key=True),
        Column("version", Integer, nullable=False),
        Column("body", Text, nullable=False),
    )
    Table(
        "service_events",
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
        Index("ix_service_events_service_name", "service_name", "seq"),
        sqlite_autoincrement=True,
    )
    Table(
        "leases",
        md,
        Column("name", String(255), primary_key=True),
        Column("holder", String(255), nullable=False),
        Column("expires_at", UtcDateTime, nullable=False),
        Column("version", Integer, nullable=False),
    )
    md.create_all(conn)
