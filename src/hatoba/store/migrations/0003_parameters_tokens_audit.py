"""Parameters (with their version high-water marks), API tokens and the audit log.

Also widens ``changes.key`` to 1024 characters, as parameter names reach 1011; SQLite does
not enforce VARCHAR lengths, so only PostgreSQL needs the ALTER.

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
    if conn.dialect.name == "postgresql":
        conn.execute(text("ALTER TABLE changes ALTER COLUMN key TYPE VARCHAR(1024)"))
    md = MetaData()
    Table(
        "parameters",
        md,
        Column("name", String(1024), primary_key=True),
        Column("version", Integer, primary_key=True, autoincrement=False),
        Column("body", Text, nullable=False),
        Index("ix_parameters_name", "name", postgresql_ops={"name": "text_pattern_ops"}),
    )
    Table(
        "parameter_names",
        md,
        Column("name", String(1024), primary_key=True),
        Column("last_version", Integer, nullable=False),
    )
    Table(
        "api_tokens",
        md,
        Column("token_id", String(64), primary_key=True),
        Column("name", String(255), nullable=False),
        Column("body", Text, nullable=False),
        Index("ux_api_tokens_name", "name", unique=True),
    )
    Table(
        "audit",
        md,
        Column(
            "seq",
            BigInteger().with_variant(Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        Column("at", UtcDateTime, nullable=False),
        Column("body", Text, nullable=False),
        sqlite_autoincrement=True,
    )
    md.create_all(conn)
