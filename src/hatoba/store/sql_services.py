"""Services, their event logs, their tasks, and leases, as transaction functions for
``SqlStore``.

Each function is the body of one store method: a plain function of a ``Tx`` that
``SqlStore`` hands to its runner, the same single code path for SQLite and PostgreSQL.

Service writes are compare-and-set on ``services.version`` and go on the change feed (kind
``service``). Events and leases do not: events have their own seq (an event's id), taken in
commit order on PostgreSQL under an advisory lock, as the feed's are, so that a reader
following with ``after_id`` cannot skip an event that committed late. A lease is taken with
one upsert whose ``DO UPDATE`` applies only if the row is the caller's or expired; the
database's row lock (PostgreSQL) or single writer (SQLite) makes that atomic across
processes, and whether a row came back says who won.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import ReturningInsert

from hatoba.model.errors import Conflict, NotFound
from hatoba.model.service import MAX_EVENTS_KEPT, Service, ServiceEvent
from hatoba.model.task import Task
from hatoba.store.runner import Tx
from hatoba.store.schema import leases, service_events, services, tasks

# An arbitrary constant naming the advisory lock that orders event appends ("hatb" + 3;
# runner.py has 1 and 2).
EVENTS_LOCK = 0x68617462_03

_GET = select(services.c.body).where(services.c.service_name == bindparam("k"))
_VERSION = select(services.c.version).where(services.c.service_name == bindparam("k"))
_LIST = select(services.c.body).order_by(services.c.service_name)
_INSERT = services.insert()
_UPDATE = update(services).where(
    services.c.service_name == bindparam("k"), services.c.version == bindparam("expected")
)
_DELETE = delete(services).where(services.c.service_name == bindparam("k"))

_LOCK_EVENTS = select(func.pg_advisory_xact_lock(EVENTS_LOCK))
_INSERT_EVENT = service_events.insert()
_DELETE_EVENTS = delete(service_events).where(service_events.c.service_name == bindparam("k"))
# The seq of the newest event past the ones kept: it and everything older go.
_FIRST_PRUNED = (
    select(service_events.c.seq)
    .where(service_events.c.service_name == bindparam("k"))
    .order_by(service_events.c.seq.desc())
    .offset(MAX_EVENTS_KEPT)
    .limit(1)
)
_PRUNE = delete(service_events).where(
    service_events.c.service_name == bindparam("k"), service_events.c.seq <= bindparam("upto")
)

# Both use ix_tasks_group_name for the equality (the sort is over one group's tasks).
_GROUP_TASKS = (
    select(tasks.c.body)
    .where(tasks.c.group_name == bindparam("g"))
    .order_by(tasks.c.created_at, tasks.c.task_id)
)
_GROUP_TASKS_SINCE = _GROUP_TASKS.where(
    or_(text("last_status <> 'STOPPED'"), tasks.c.stopped_at >= bindparam("after"))
)


def _acquire(stmt: postgresql.Insert | sqlite.Insert) -> ReturningInsert[tuple[str]]:
    """The take-or-renew upsert for one dialect: a row comes back only when the lease is
    now the caller's (inserted, or updated because it was the caller's or had expired)."""
    return stmt.on_conflict_do_update(
        index_elements=[leases.c.name],
        set_={
            "holder": stmt.excluded.holder,
            "expires_at": stmt.excluded.expires_at,
            "version": leases.c.version + 1,
        },
        where=or_(leases.c.holder == stmt.excluded.holder, leases.c.expires_at <= bindparam("now")),
    ).returning(leases.c.holder)


_ACQUIRE_PG = _acquire(postgresql.insert(leases))
_ACQUIRE_SQLITE = _acquire(sqlite.insert(leases))
_RELEASE = delete(leases).where(leases.c.name == bindparam("k"), leases.c.holder == bindparam("h"))


# ---- services ----


def create_service(tx: Tx, service: Service) -> Service:
    """Raises ``IntegrityError`` on a duplicate name (the caller makes it ``Conflict``)."""
    stored = service.model_copy(update={"version": 1})
    tx.conn.execute(_INSERT, _row(stored))
    tx.record("service", stored.service_name, stored)
    return stored


def get_service(tx: Tx, name: str) -> Service | None:
    body = tx.conn.scalar(_GET, {"k": name})
    return None if body is None else Service.model_validate_json(body)


def list_services(tx: Tx) -> list[Service]:
    return [Service.model_validate_json(b) for b in tx.conn.scalars(_LIST).all()]


def update_service(tx: Tx, service: Service) -> Service:
    name = service.service_name
    stored = service.model_copy(update={"version": service.version + 1})
    row = _row(stored) | {"k": name, "expected": service.version}
    if tx.conn.execute(_UPDATE, row).rowcount == 0:
        current = tx.conn.scalar(_VERSION, {"k": name})
        if current is None:
            raise NotFound(f"service {name} not found")
        raise Conflict(
            f"service {name} changed since it was read (version {service.version}, now {current})"
        )
    tx.record("service", name, stored)
    return stored


def delete_service(tx: Tx, name: str) -> None:
    if tx.conn.execute(_DELETE, {"k": name}).rowcount == 0:
        raise NotFound(f"service {name} not found")
    tx.conn.execute(_DELETE_EVENTS, {"k": name})
    tx.record("service", name)


def _row(service: Service) -> dict[str, Any]:
    return {
        "service_name": service.service_name,
        "version": service.version,
        "body": service.model_dump_json(by_alias=True),
    }


# ---- events ----


def append_service_events(tx: Tx, events: Sequence[ServiceEvent]) -> None:
    if not events:
        return
    if tx.postgres:
        tx.conn.execute(_LOCK_EVENTS)
    for event in events:  # one by one: ids follow the given order
        body = event.model_copy(update={"id": 0}).model_dump_json(by_alias=True)
        tx.conn.execute(
            _INSERT_EVENT,
            {"service_name": event.service_name, "at": event.created_at, "body": body},
        )
    for name in dict.fromkeys(e.service_name for e in events):
        upto = tx.conn.scalar(_FIRST_PRUNED, {"k": name})
        if upto is not None:
            tx.conn.execute(_PRUNE, {"k": name, "upto": upto})


def list_service_events(tx: Tx, name: str, limit: int, after_id: int | None) -> list[ServiceEvent]:
    stmt = (
        select(service_events.c.seq, service_events.c.body)
        .where(service_events.c.service_name == name)
        .order_by(service_events.c.seq.desc())
        .limit(max(0, limit))
    )
    if after_id is not None:
        stmt = stmt.where(service_events.c.seq > after_id)
    return [
        ServiceEvent.model_validate_json(body).model_copy(update={"id": int(seq)})
        for seq, body in tx.conn.execute(stmt).all()
    ]


# ---- tasks ----


def service_tasks(tx: Tx, group: str, stopped_after: datetime | None) -> list[Task]:
    if stopped_after is None:
        bodies = tx.conn.scalars(_GROUP_TASKS, {"g": group}).all()
    else:
        bodies = tx.conn.scalars(_GROUP_TASKS_SINCE, {"g": group, "after": stopped_after}).all()
    return [Task.model_validate_json(b) for b in bodies]


# ---- leases ----


def acquire_lease(tx: Tx, name: str, holder: str, ttl: float, now: datetime) -> bool:
    params = {
        "name": name,
        "holder": holder,
        "expires_at": now + timedelta(seconds=ttl),
        "version": 1,
        "now": now,
    }
    row = tx.conn.execute(_ACQUIRE_PG if tx.postgres else _ACQUIRE_SQLITE, params).first()
    return row is not None


def release_lease(tx: Tx, name: str, holder: str) -> None:
    tx.conn.execute(_RELEASE, {"k": name, "h": holder})
