"""A partial index over tasks not yet STOPPED, covering what placement sums.

RunTask sums the cpu/memory of live tasks per node; without this index that query walks
every stopped task kept for the retention period (6.8 ms with 3,000 of them). The query
must compare ``last_status`` with the literal ``'STOPPED'`` for SQLite to use the index.
"""

from __future__ import annotations

from sqlalchemy import Connection, text


def upgrade(conn: Connection) -> None:
    conn.execute(
        text(
            "CREATE INDEX ix_tasks_live ON tasks (node_id, cpu, memory) "
            "WHERE last_status <> 'STOPPED'"
        )
    )
