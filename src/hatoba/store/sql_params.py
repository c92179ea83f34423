"""Parameters, API tokens and the audit log, as transaction functions for ``SqlStore``.

Each function is the body of one store method: a plain function of a ``Tx`` that
``SqlStore`` hands to its runner, the same single code path for SQLite and PostgreSQL.

Writes to one parameter are serialised on its ``parameter_names`` row: a put bumps the row's
``last_version`` (an upsert, which locks it on PostgreSQL; SQLite has one writer anyway),
other writes lock it with ``SELECT ... FOR UPDATE`` (rendered as a plain SELECT on SQLite).
That row is the high-water mark too, so a version number is never handed out twice, neither
after the oldest version is evicted nor after the parameter is deleted and written again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from hatoba.model.access import ApiToken, AuditEntry
from hatoba.model.errors import Conflict, NotFound
from hatoba.model.params import (
    ParameterType,
    StoredParameter,
    is_under,
    relabel,
    version_to_evict,
)
from hatoba.store.runner import Tx
from hatoba.store.schema import api_tokens, audit, parameter_names, parameters

_BUMP_PG = (
    postgresql.insert(parameter_names)
    .values(name=bindparam("name"), last_version=1)
    .on_conflict_do_update(
        index_elements=[parameter_names.c.name],
        set_={"last_version": parameter_names.c.last_version + 1},
    )
    .returning(parameter_names.c.last_version)
)
_BUMP_SQLITE = (
    sqlite.insert(parameter_names)
    .values(name=bindparam("name"), last_version=1)
    .on_conflict_do_update(
        index_elements=[parameter_names.c.name],
        set_={"last_version": parameter_names.c.last_version + 1},
    )
    .returning(parameter_names.c.last_version)
)
_LOCK_NAME = (
    select(parameter_names.c.last_version)
    .where(parameter_names.c.name == bindparam("name"))
    .with_for_update()
)
_VERSIONS = (
    select(parameters.c.body)
    .where(parameters.c.name == bindparam("name"))
    .order_by(parameters.c.version)
)
_ONE_VERSION = select(parameters.c.body).where(
    parameters.c.name == bindparam("name"), parameters.c.version == bindparam("version")
)
_INSERT_PARAM = parameters.insert()
_SET_BODY = (
    update(parameters)
    .where(parameters.c.name == bindparam("k"), parameters.c.version == bindparam("v"))
    .values(body=bindparam("new_body"))
)
_DELETE_VERSION = delete(parameters).where(
    parameters.c.name == bindparam("name"), parameters.c.version == bindparam("version")
)
_ALL_VERSIONS = select(parameters.c.body).order_by(parameters.c.name, parameters.c.version)

_GET_TOKEN = select(api_tokens.c.body).where(api_tokens.c.token_id == bindparam("k"))
_TOKEN_BY_NAME = select(api_tokens.c.token_id).where(api_tokens.c.name == bindparam("name"))
_INSERT_AUDIT = audit.insert().returning(audit.c.seq)


# ---- parameters ----


def put_parameter(tx: Tx, param: StoredParameter, overwrite: bool) -> StoredParameter:
    name = param.name
    version = int(
        tx.conn.execute(_BUMP_PG if tx.postgres else _BUMP_SQLITE, {"name": name}).scalar_one()
    )
    existing = _versions(tx, name)
    if existing and not overwrite:
        raise Conflict(f"parameter {name} already exists; overwrite it explicitly")
    labels: dict[int, tuple[str, ...]] = {p.version: p.labels for p in existing}
    new_labels: tuple[str, ...] = ()
    if param.labels:
        moved = relabel(labels | {version: ()}, version, param.labels)
        new_labels = moved.pop(version)
        labels = moved
    # Checked after the move: labels this write takes off the oldest version free it to go.
    evict = version_to_evict(labels)
    stored = param.model_copy(update={"version": version, "labels": new_labels})
    if evict is not None:
        tx.conn.execute(_DELETE_VERSION, {"name": name, "version": evict})
    for old in existing:
        if old.version != evict and labels[old.version] != old.labels:
            _rewrite(tx, old.model_copy(update={"labels": labels[old.version]}))
    tx.conn.execute(_INSERT_PARAM, {"name": name, "version": version, "body": _dump(stored)})
    tx.record("param", name)
    return stored


def get_parameter_versions(tx: Tx, name: str) -> list[StoredParameter]:
    return _versions(tx, name)


def list_parameters(tx: Tx, path: str, recursive: bool) -> list[StoredParameter]:
    latest = select(parameters.c.name, func.max(parameters.c.version).label("version"))
    if path != "/":
        prefix = path if path.endswith("/") else path + "/"
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        latest = latest.where(parameters.c.name.like(escaped + "%", escape="\\"))
    newest = latest.group_by(parameters.c.name).subquery()
    stmt = select(parameters.c.body).select_from(
        parameters.join(
            newest,
            and_(parameters.c.name == newest.c.name, parameters.c.version == newest.c.version),
        )
    )
    found = [StoredParameter.model_validate_json(b) for b in tx.conn.scalars(stmt).all()]
    # is_under is the rule (SQLite's LIKE ignores ASCII case); sorted here so that both
    # databases order alike whatever PostgreSQL's collation.
    return sorted((p for p in found if is_under(path, p.name, recursive)), key=lambda p: p.name)


def label_parameter_version(
    tx: Tx, name: str, version: int, labels: Sequence[str]
) -> StoredParameter:
    tx.conn.execute(_LOCK_NAME, {"name": name})
    existing = _versions(tx, name)
    if not existing:
        raise NotFound(f"parameter {name} not found")
    if all(p.version != version for p in existing):
        raise NotFound(f"parameter {name} has no version {version}")
    moved = relabel({p.version: p.labels for p in existing}, version, labels)
    target = existing[0]
    for p in existing:
        if moved[p.version] != p.labels:
            _rewrite(tx, p.model_copy(update={"labels": moved[p.version]}))
        if p.version == version:
            target = p.model_copy(update={"labels": moved[p.version]})
    tx.record("param", name)
    return target


def delete_parameter(tx: Tx, name: str) -> int:
    tx.conn.execute(_LOCK_NAME, {"name": name})
    count = tx.conn.execute(delete(parameters).where(parameters.c.name == name)).rowcount
    if not count:
        raise NotFound(f"parameter {name} not found")
    tx.record("param", name)
    return int(count)


def secure_parameter_versions(tx: Tx) -> list[StoredParameter]:
    every = (StoredParameter.model_validate_json(b) for b in tx.conn.scalars(_ALL_VERSIONS))
    return [p for p in every if p.type is ParameterType.SECURE_STRING]


def replace_ciphertext(tx: Tx, name: str, version: int, old: str, new: str) -> bool:
    tx.conn.execute(_LOCK_NAME, {"name": name})
    body = tx.conn.scalar(_ONE_VERSION, {"name": name, "version": version})
    if body is None:
        return False
    current = StoredParameter.model_validate_json(body)
    if current.type is not ParameterType.SECURE_STRING or current.ciphertext != old:
        return False
    _rewrite(tx, current.model_copy(update={"ciphertext": new}))
    tx.record("param", name)
    return True


def _versions(tx: Tx, name: str) -> list[StoredParameter]:
    return [
        StoredParameter.model_validate_json(b)
        for b in tx.conn.scalars(_VERSIONS, {"name": name}).all()
    ]


def _rewrite(tx: Tx, param: StoredParameter) -> None:
    tx.conn.execute(_SET_BODY, {"k": param.name, "v": param.version, "new_body": _dump(param)})


def _dump(model: StoredParameter | ApiToken | AuditEntry) -> str:
    return model.model_dump_json(by_alias=True)


# ---- tokens ----


def put_token(tx: Tx, token: ApiToken) -> ApiToken:
    if tx.conn.scalar(_TOKEN_BY_NAME, {"name": token.name}) is not None:
        raise Conflict(f"a token named {token.name} already exists")
    if tx.conn.scalar(_GET_TOKEN, {"k": token.token_id}) is not None:
        raise Conflict(f"token {token.token_id} already exists")
    tx.conn.execute(
        api_tokens.insert(),
        {"token_id": token.token_id, "name": token.name, "body": _dump(token)},
    )
    tx.record("token", token.token_id)
    return token


def get_token(tx: Tx, token_id: str) -> ApiToken | None:
    body = tx.conn.scalar(_GET_TOKEN, {"k": token_id})
    return None if body is None else ApiToken.model_validate_json(body)


def list_tokens(tx: Tx) -> list[ApiToken]:
    tokens = [ApiToken.model_validate_json(b) for b in tx.conn.scalars(select(api_tokens.c.body))]
    return sorted(tokens, key=lambda t: (t.created_at, t.token_id))


def revoke_token(tx: Tx, token_id: str, at: datetime) -> ApiToken:
    current = get_token(tx, token_id)
    if current is None:
        raise NotFound(f"token {token_id} not found")
    if current.revoked_at is not None:  # revoking again keeps the first time
        return current
    stored = current.model_copy(update={"revoked_at": at})
    tx.conn.execute(
        update(api_tokens).where(api_tokens.c.token_id == token_id).values(body=_dump(stored))
    )
    tx.record("token", token_id)
    return stored


# ---- audit ----


def append_audit(tx: Tx, entry: AuditEntry) -> AuditEntry:
    stored = entry.model_copy(update={"seq": 0})  # the row's seq is the truth
    seq = tx.conn.execute(_INSERT_AUDIT, {"at": entry.at, "body": _dump(stored)}).scalar_one()
    return entry.model_copy(update={"seq": int(seq)})


def append_audits(tx: Tx, entries: Sequence[AuditEntry]) -> None:
    for entry in entries:
        append_audit(tx, entry)


def list_audit(tx: Tx, limit: int, before_seq: int | None) -> list[AuditEntry]:
    stmt = select(audit.c.seq, audit.c.body).order_by(audit.c.seq.desc()).limit(max(0, limit))
    if before_seq is not None:
        stmt = stmt.where(audit.c.seq < before_seq)
    return [
        AuditEntry.model_validate_json(body).model_copy(update={"seq": int(seq)})
        for seq, body in tx.conn.execute(stmt).all()
    ]
