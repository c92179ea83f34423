"""Autoscaling state as transaction functions for ``SqlStore``: scalable targets
(compare-and-set on ``version``), scaling policies and scheduled actions (upserts keyed by
service and name, only under an existing target), and the activity log.

Writes to targets, policies and actions go on the change feed as kind ``scaling`` with the
service name as key, so the scaling loop can wake on them. Activities do not: like service
events they are a log, with their own seq, pruned to the newest ``MAX_ACTIVITIES_KEPT`` per
service.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from hatoba.model.errors import Conflict, NotFound
from hatoba.model.scaling import (
    MAX_ACTIVITIES_KEPT,
    ScalableTarget,
    ScalingActivity,
    ScalingPolicy,
    ScheduledAction,
)
from hatoba.store.runner import PostgresRunner, SqliteRunner, Tx
from hatoba.store.schema import (
    scalable_targets,
    scaling_activities,
    scaling_policies,
    scheduled_actions,
)

KIND = "scaling"

_GET = select(scalable_targets.c.body).where(scalable_targets.c.service_name == bindparam("k"))
_VERSION = select(scalable_targets.c.version).where(
    scalable_targets.c.service_name == bindparam("k")
)
_LIST = select(scalable_targets.c.body).order_by(scalable_targets.c.service_name)
_UPDATE = update(scalable_targets).where(
    scalable_targets.c.service_name == bindparam("k"),
    scalable_targets.c.version == bindparam("expected"),
)
_FIRST_PRUNED = (
    select(scaling_activities.c.seq)
    .where(scaling_activities.c.service_name == bindparam("k"))
    .order_by(scaling_activities.c.seq.desc())
    .offset(MAX_ACTIVITIES_KEPT)
    .limit(1)
)
_PRUNE = delete(scaling_activities).where(
    scaling_activities.c.service_name == bindparam("k"),
    scaling_activities.c.seq <= bindparam("upto"),
)


# ---- scalable targets ----


def put_scalable_target(tx: Tx, target: ScalableTarget) -> ScalableTarget:
    """Insert when ``target.version`` is 0 (``IntegrityError`` if one exists: the caller
    makes it ``Conflict``), else compare-and-set."""
    name = target.service_name
    stored = target.model_copy(update={"version": target.version + 1})
    body = stored.model_dump_json(by_alias=True)
    if target.version == 0:
        tx.conn.execute(
            scalable_targets.insert(),
            {"service_name": name, "version": stored.version, "body": body},
        )
    else:
        row = {"k": name, "expected": target.version, "version": stored.version, "body": body}
        if tx.conn.execute(_UPDATE, row).rowcount == 0:
            current = tx.conn.scalar(_VERSION, {"k": name})
            if current is None:
                raise NotFound(f"no scalable target for service {name}")
            raise Conflict(
                f"the scalable target of {name} changed since it was read "
                f"(version {target.version}, now {current})"
            )
    tx.record(KIND, name)
    return stored


def get_scalable_target(tx: Tx, service: str) -> ScalableTarget | None:
    body = tx.conn.scalar(_GET, {"k": service})
    return None if body is None else ScalableTarget.model_validate_json(body)


def list_scalable_targets(tx: Tx) -> list[ScalableTarget]:
    return [ScalableTarget.model_validate_json(b) for b in tx.conn.scalars(_LIST).all()]


def delete_scalable_target(tx: Tx, service: str) -> None:
    """The target with its policies and scheduled actions (its activities stay)."""
    gone = tx.conn.execute(
        delete(scalable_targets).where(scalable_targets.c.service_name == service)
    ).rowcount
    if gone == 0:
        raise NotFound(f"no scalable target for service {service}")
    tx.conn.execute(delete(scaling_policies).where(scaling_policies.c.service_name == service))
    tx.conn.execute(delete(scheduled_actions).where(scheduled_actions.c.service_name == service))
    tx.record(KIND, service)


def _require_target(tx: Tx, service: str) -> None:
    if tx.conn.scalar(_VERSION, {"k": service}) is None:
        raise NotFound(f"no scalable target for service {service}: register one first")


# ---- policies and scheduled actions ----


def _upsert(tx: Tx, table: str, service: str, name: str, body: str) -> None:
    t = scaling_policies if table == "policy" else scheduled_actions
    key = t.c.policy_name if table == "policy" else t.c.action_name
    insert = postgresql.insert(t) if tx.postgres else sqlite.insert(t)
    stmt = insert.values({"service_name": service, key.name: name, "body": body})
    stmt = stmt.on_conflict_do_update(
        index_elements=[t.c.service_name, key], set_={"body": stmt.excluded.body}
    )
    tx.conn.execute(stmt)


def put_scaling_policy(tx: Tx, policy: ScalingPolicy) -> ScalingPolicy:
    """Insert or replace; ``NotFound`` without a scalable target for the service."""
    _require_target(tx, policy.service_name)
    body = policy.model_dump_json(by_alias=True)
    _upsert(tx, "policy", policy.service_name, policy.policy_name, body)
    tx.record(KIND, policy.service_name)
    return policy


def list_scaling_policies(tx: Tx, service: str | None) -> list[ScalingPolicy]:
    stmt = select(scaling_policies.c.body).order_by(
        scaling_policies.c.service_name, scaling_policies.c.policy_name
    )
    if service is not None:
        stmt = stmt.where(scaling_policies.c.service_name == service)
    return [ScalingPolicy.model_validate_json(b) for b in tx.conn.scalars(stmt).all()]


def delete_scaling_policy(tx: Tx, service: str, name: str) -> None:
    stmt = delete(scaling_policies).where(
        scaling_policies.c.service_name == service, scaling_policies.c.policy_name == name
    )
    if tx.conn.execute(stmt).rowcount == 0:
        raise NotFound(f"service {service} has no scaling policy {name}")
    tx.record(KIND, service)


def put_scheduled_action(tx: Tx, action: ScheduledAction) -> ScheduledAction:
    """Insert or replace; ``NotFound`` without a scalable target for the service."""
    _require_target(tx, action.service_name)
    body = action.model_dump_json(by_alias=True)
    _upsert(tx, "action", action.service_name, action.scheduled_action_name, body)
    tx.record(KIND, action.service_name)
    return action


def list_scheduled_actions(tx: Tx, service: str | None) -> list[ScheduledAction]:
    stmt = select(scheduled_actions.c.body).order_by(
        scheduled_actions.c.service_name, scheduled_actions.c.action_name
    )
    if service is not None:
        stmt = stmt.where(scheduled_actions.c.service_name == service)
    return [ScheduledAction.model_validate_json(b) for b in tx.conn.scalars(stmt).all()]


def delete_scheduled_action(tx: Tx, service: str, name: str) -> None:
    stmt = delete(scheduled_actions).where(
        scheduled_actions.c.service_name == service, scheduled_actions.c.action_name == name
    )
    if tx.conn.execute(stmt).rowcount == 0:
        raise NotFound(f"service {service} has no scheduled action {name}")
    tx.record(KIND, service)


# ---- activities ----


def append_scaling_activities(tx: Tx, activities: Sequence[ScalingActivity]) -> None:
    for a in activities:  # one by one: seqs follow the given order
        tx.conn.execute(
            scaling_activities.insert(),
            {
                "service_name": a.service_name,
                "at": a.at,
                "body": a.model_dump_json(by_alias=True),
            },
        )
    for name in dict.fromkeys(a.service_name for a in activities):
        upto = tx.conn.scalar(_FIRST_PRUNED, {"k": name})
        if upto is not None:
            tx.conn.execute(_PRUNE, {"k": name, "upto": upto})


def list_scaling_activities(tx: Tx, service: str, limit: int) -> list[ScalingActivity]:
    stmt = (
        select(scaling_activities.c.body)
        .where(scaling_activities.c.service_name == service)
        .order_by(scaling_activities.c.seq.desc())
        .limit(max(0, limit))
    )
    return [ScalingActivity.model_validate_json(b) for b in tx.conn.scalars(stmt).all()]


class ScalingStoreMethods:
    """The autoscaling part of ``SqlStore`` (mixed in), each method one transaction."""

    _runner: SqliteRunner | PostgresRunner

    async def put_scalable_target(self, target: ScalableTarget) -> ScalableTarget:
        try:
            return await self._runner.run(lambda tx: put_scalable_target(tx, target), write=True)
        except IntegrityError as e:
            raise Conflict(f"service {target.service_name} has a scalable target already") from e

    async def get_scalable_target(self, service: str) -> ScalableTarget | None:
        return await self._runner.run(lambda tx: get_scalable_target(tx, service), write=False)

    async def list_scalable_targets(self) -> list[ScalableTarget]:
        return await self._runner.run(list_scalable_targets, write=False)

    async def delete_scalable_target(self, service: str) -> None:
        await self._runner.run(lambda tx: delete_scalable_target(tx, service), write=True)

    async def put_scaling_policy(self, policy: ScalingPolicy) -> ScalingPolicy:
        return await self._runner.run(lambda tx: put_scaling_policy(tx, policy), write=True)

    async def list_scaling_policies(self, service: str | None = None) -> list[ScalingPolicy]:
        return await self._runner.run(lambda tx: list_scaling_policies(tx, service), write=False)

    async def delete_scaling_policy(self, service: str, name: str) -> None:
        await self._runner.run(lambda tx: delete_scaling_policy(tx, service, name), write=True)

    async def put_scheduled_action(self, action: ScheduledAction) -> ScheduledAction:
        return await self._runner.run(lambda tx: put_scheduled_action(tx, action), write=True)

    async def list_scheduled_actions(self, service: str | None = None) -> list[ScheduledAction]:
        return await self._runner.run(lambda tx: list_scheduled_actions(tx, service), write=False)

    async def delete_scheduled_action(self, service: str, name: str) -> None:
        await self._runner.run(lambda tx: delete_scheduled_action(tx, service, name), write=True)

    async def append_scaling_activities(self, activities: Sequence[ScalingActivity]) -> None:
        if activities:
            await self._runner.run(lambda tx: append_scaling_activities(tx, activities), write=True)

    async def list_scaling_activities(
        self, service: str, *, limit: int = 50
    ) -> list[ScalingActivity]:
        return await self._runner.run(
            lambda tx: list_scaling_activities(tx, service, limit), write=False
        )
