"""Jobs, their runs, events and webhook outbox, as transaction functions for ``SqlStore``.

Each function is the body of one store method: a plain function of a ``Tx`` that
``SqlStore`` hands to its runner, the same single code path for SQLite and PostgreSQL.

Jobs and runs are compare-and-set on ``version`` and go on the change feed (kinds ``job`` and
``jobrun``). A scheduled run is claimed with ``INSERT ... ON CONFLICT (job_name, tick) DO
NOTHING``: on PostgreSQL a second inserter of the same tick waits for the first transaction
and then inserts nothing, so exactly one claim comes back, across processes and crashes.
Notifications are inserted in the same transaction as the run change they report, so a
committed run transition always has its webhooks queued, and a rolled-back one never does.
Events (own seq, like service events) and the outbox are not on the feed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from hatoba.model.errors import Conflict, NotFound
from hatoba.model.job import (
    MAX_JOB_EVENTS_KEPT,
    DeliveryStatus,
    Job,
    JobEvent,
    JobNotification,
    JobRun,
)
from hatoba.store.runner import Tx
from hatoba.store.schema import job_events, job_notifications, job_runs, jobs

# An arbitrary constant naming the advisory lock that orders job event appends ("hatb" + 5;
# runner.py has 1 and 2, sql_services.py 3).
JOB_EVENTS_LOCK = 0x68617462_05

_GET = select(jobs.c.body).where(jobs.c.job_name == bindparam("k"))
_VERSION = select(jobs.c.version).where(jobs.c.job_name == bindparam("k"))
_LIST = select(jobs.c.body).order_by(jobs.c.job_name)
_INSERT = jobs.insert()
_UPDATE = update(jobs).where(
    jobs.c.job_name == bindparam("k"), jobs.c.version == bindparam("expected")
)
_DELETE = delete(jobs).where(jobs.c.job_name == bindparam("k"))

_GET_RUN = select(job_runs.c.body).where(job_runs.c.run_id == bindparam("k"))
_RUN_VERSION = select(job_runs.c.version).where(job_runs.c.run_id == bindparam("k"))
_INSERT_RUN = job_runs.insert()
_UPDATE_RUN = update(job_runs).where(
    job_runs.c.run_id == bindparam("k"), job_runs.c.version == bindparam("expected")
)
_DELETE_RUNS = delete(job_runs).where(job_runs.c.job_name == bindparam("k"))
# ``IS NULL`` rendered literally, so SQLite can use the partial index ix_job_runs_active
_ACTIVE = select(job_runs.c.body).where(job_runs.c.finished_at.is_(None))


def _claim(stmt: postgresql.Insert | sqlite.Insert) -> Any:
    return stmt.on_conflict_do_nothing(
        index_elements=[job_runs.c.job_name, job_runs.c.tick]
    ).returning(job_runs.c.run_id)


_CLAIM_PG = _claim(postgresql.insert(job_runs))
_CLAIM_SQLITE = _claim(sqlite.insert(job_runs))

_LOCK_EVENTS = select(func.pg_advisory_xact_lock(JOB_EVENTS_LOCK))
_INSERT_EVENT = job_events.insert()
_DELETE_EVENTS = delete(job_events).where(job_events.c.job_name == bindparam("k"))
_FIRST_PRUNED = (
    select(job_events.c.seq)
    .where(job_events.c.job_name == bindparam("k"))
    .order_by(job_events.c.seq.desc())
    .offset(MAX_JOB_EVENTS_KEPT)
    .limit(1)
)
_PRUNE = delete(job_events).where(
    job_events.c.job_name == bindparam("k"), job_events.c.seq <= bindparam("upto")
)

_INSERT_NOTE = job_notifications.insert().returning(job_notifications.c.id)
_DELETE_PENDING_NOTES = delete(job_notifications).where(
    job_notifications.c.job_name == bindparam("k"),
    job_notifications.c.status == DeliveryStatus.PENDING.value,
)
_PENDING = job_notifications.c.status == DeliveryStatus.PENDING.value


def _record(tx: Tx, kind: str, key: str, value: Job | JobRun | None) -> None:
    """``Tx.record`` and attach the object to the change it appended (``Tx.record``'s
    signature predates jobs)."""
    tx.record(kind, key)
    if value is not None:
        tx.changes[-1] = dataclasses.replace(tx.changes[-1], value=value)


# ---- jobs ----


def create_job(tx: Tx, job: Job) -> Job:
    """Raises ``IntegrityError`` on a duplicate name (the caller makes it ``Conflict``)."""
    stored = job.model_copy(update={"version": 1})
    tx.conn.execute(_INSERT, _job_row(stored))
    _record(tx, "job", stored.job_name, stored)
    return stored


def get_job(tx: Tx, name: str) -> Job | None:
    body = tx.conn.scalar(_GET, {"k": name})
    return None if body is None else Job.model_validate_json(body)


def list_jobs(tx: Tx) -> list[Job]:
    return [Job.model_validate_json(b) for b in tx.conn.scalars(_LIST).all()]


def update_job(tx: Tx, job: Job) -> Job:
    name = job.job_name
    stored = job.model_copy(update={"version": job.version + 1})
    row = _job_row(stored) | {"k": name, "expected": job.version}
    if tx.conn.execute(_UPDATE, row).rowcount == 0:
        current = tx.conn.scalar(_VERSION, {"k": name})
        if current is None:
            raise NotFound(f"job {name} not found")
        raise Conflict(
            f"job {name} changed since it was read (version {job.version}, now {current})"
        )
    _record(tx, "job", name, stored)
    return stored


def delete_job(tx: Tx, name: str) -> None:
    if tx.conn.execute(_DELETE, {"k": name}).rowcount == 0:
        raise NotFound(f"job {name} not found")
    tx.conn.execute(_DELETE_RUNS, {"k": name})
    tx.conn.execute(_DELETE_EVENTS, {"k": name})
    tx.conn.execute(_DELETE_PENDING_NOTES, {"k": name})
    _record(tx, "job", name, None)


def _job_row(job: Job) -> dict[str, Any]:
    return {
        "job_name": job.job_name,
        "version": job.version,
        "body": job.model_dump_json(by_alias=True),
    }


# ---- runs ----


def claim_tick(tx: Tx, run: JobRun, notes: Sequence[JobNotification]) -> JobRun | None:
    if run.tick is None:
        raise ValueError("claim_tick needs a run with a tick")
    stored = run.model_copy(update={"version": 1})
    claimed = tx.conn.execute(_CLAIM_PG if tx.postgres else _CLAIM_SQLITE, _run_row(stored))
    if claimed.first() is None:
        return None  # someone claimed this (job, tick) before
    _record(tx, "jobrun", stored.run_id, stored)
    _enqueue(tx, notes)
    return stored


def create_job_run(tx: Tx, run: JobRun, notes: Sequence[JobNotification]) -> JobRun:
    """Raises ``IntegrityError`` if the run id (or a tick) is taken."""
    stored = run.model_copy(update={"version": 1})
    tx.conn.execute(_INSERT_RUN, _run_row(stored))
    _record(tx, "jobrun", stored.run_id, stored)
    _enqueue(tx, notes)
    return stored


def update_job_run(
    tx: Tx,
    run: JobRun,
    new_runs: Sequence[JobRun],
    notes: Sequence[JobNotification],
) -> JobRun:
    stored = run.model_copy(update={"version": run.version + 1})
    row = _run_row(stored) | {"k": run.run_id, "expected": run.version}
    if tx.conn.execute(_UPDATE_RUN, row).rowcount == 0:
        current = tx.conn.scalar(_RUN_VERSION, {"k": run.run_id})
        if current is None:
            raise NotFound(f"job run {run.run_id} not found")
        raise Conflict(
            f"job run {run.run_id} changed since it was read (version {run.version}, now {current})"
        )
    _record(tx, "jobrun", run.run_id, stored)
    for new in new_runs:
        create_job_run(tx, new, ())
    _enqueue(tx, notes)
    return stored


def get_job_run(tx: Tx, run_id: str) -> JobRun | None:
    body = tx.conn.scalar(_GET_RUN, {"k": run_id})
    return None if body is None else JobRun.model_validate_json(body)


def list_job_runs(tx: Tx, name: str, limit: int, before: str | None) -> list[JobRun]:
    stmt = (
        select(job_runs.c.body)
        .where(job_runs.c.job_name == name)
        .order_by(job_runs.c.run_id.desc())
        .limit(max(0, limit))
    )
    if before is not None:
        stmt = stmt.where(job_runs.c.run_id < before)
    return [JobRun.model_validate_json(b) for b in tx.conn.scalars(stmt).all()]


def active_job_runs(tx: Tx, name: str | None) -> list[JobRun]:
    stmt = _ACTIVE.order_by(job_runs.c.run_id)
    if name is not None:
        stmt = stmt.where(job_runs.c.job_name == name)
    return [JobRun.model_validate_json(b) for b in tx.conn.scalars(stmt).all()]


def delete_job_runs(tx: Tx, name: str, finished_before: datetime) -> int:
    stmt = delete(job_runs).where(
        job_runs.c.job_name == name,
        job_runs.c.finished_at < finished_before,
    )
    return int(tx.conn.execute(stmt).rowcount)


def _run_row(run: JobRun) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "job_name": run.job_name,
        "tick": run.tick,
        "status": run.status.value,
        "finished_at": run.finished_at,
        "version": run.version,
        "body": run.model_dump_json(by_alias=True),
    }


# ---- events ----


def append_job_events(tx: Tx, events: Sequence[JobEvent]) -> None:
    if not events:
        return
    if tx.postgres:
        tx.conn.execute(_LOCK_EVENTS)
    for event in events:  # one by one: ids follow the given order
        body = event.model_copy(update={"id": 0}).model_dump_json(by_alias=True)
        tx.conn.execute(
            _INSERT_EVENT, {"job_name": event.job_name, "at": event.created_at, "body": body}
        )
    for name in dict.fromkeys(e.job_name for e in events):
        upto = tx.conn.scalar(_FIRST_PRUNED, {"k": name})
        if upto is not None:
            tx.conn.execute(_PRUNE, {"k": name, "upto": upto})


def list_job_events(tx: Tx, name: str, limit: int, after_id: int | None) -> list[JobEvent]:
    stmt = (
        select(job_events.c.seq, job_events.c.body)
        .where(job_events.c.job_name == name)
        .order_by(job_events.c.seq.desc())
        .limit(max(0, limit))
    )
    if after_id is not None:
        stmt = stmt.where(job_events.c.seq > after_id)
    return [
        JobEvent.model_validate_json(body).model_copy(update={"id": int(seq)})
        for seq, body in tx.conn.execute(stmt).all()
    ]


# ---- the webhook outbox ----


def _enqueue(tx: Tx, notes: Sequence[JobNotification]) -> None:
    for note in notes:
        tx.conn.execute(_INSERT_NOTE, _note_row(note))


def due_job_notifications(tx: Tx, now: datetime, limit: int) -> list[JobNotification]:
    stmt = (
        select(job_notifications.c.id, job_notifications.c.body)
        .where(_PENDING, job_notifications.c.next_attempt_at <= now)
        .order_by(job_notifications.c.next_attempt_at, job_notifications.c.id)
        .limit(max(0, limit))
    )
    return [_note(i, b) for i, b in tx.conn.execute(stmt).all()]


def next_job_notification_at(tx: Tx) -> datetime | None:
    stmt = select(func.min(job_notifications.c.next_attempt_at)).where(_PENDING)
    at: datetime | None = tx.conn.scalar(stmt)
    return at


def update_job_notification(tx: Tx, note: JobNotification) -> None:
    row = _note_row(note)
    stmt = update(job_notifications).where(job_notifications.c.id == note.id).values(**row)
    tx.conn.execute(stmt)


def list_job_notifications(tx: Tx, name: str | None) -> list[JobNotification]:
    stmt = select(job_notifications.c.id, job_notifications.c.body).order_by(job_notifications.c.id)
    if name is not None:
        stmt = stmt.where(job_notifications.c.job_name == name)
    return [_note(i, b) for i, b in tx.conn.execute(stmt).all()]


def delete_job_notifications(tx: Tx, created_before: datetime) -> int:
    stmt = delete(job_notifications).where(
        job_notifications.c.status != DeliveryStatus.PENDING.value,
        job_notifications.c.created_at < created_before,
    )
    return int(tx.conn.execute(stmt).rowcount)


def _note(note_id: int, body: str) -> JobNotification:
    return JobNotification.model_validate_json(body).model_copy(update={"id": int(note_id)})


def _note_row(note: JobNotification) -> dict[str, Any]:
    return {
        "job_name": note.job_name,
        "status": note.status.value,
        "next_attempt_at": note.next_attempt_at,
        "created_at": note.created_at,
        "body": note.model_copy(update={"id": 0}).model_dump_json(by_alias=True),
    }
