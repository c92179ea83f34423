"""API tokens (CRUD, unique names, revocation) and the audit log (order and paging)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from hatoba.model.access import ApiToken, AuditEntry, Role
from hatoba.model.errors import Conflict, NotFound
from hatoba.store.sql import SqlStore
from tests.store.conftest import T0


def make_token(token_id: str, name: str, minutes: int = 0) -> ApiToken:
    return ApiToken(
        token_id=token_id,
        name=name,
        role=Role.OPERATOR,
        scopes=["service:web"],
        secret_hash="0" * 64,
        created_at=T0 + timedelta(minutes=minutes),
        created_by="admin",
    )


def make_entry(minutes: int, path: str = "/v1/tasks") -> AuditEntry:
    return AuditEntry(
        at=T0 + timedelta(minutes=minutes),
        principal="ci",
        method="POST",
        path=path,
        status=201,
    )


async def test_tokens_crud(store: SqlStore) -> None:
    seq = await store.last_change_seq()
    later = await store.put_token(make_token("t2", "deploy", minutes=5))
    earlier = await store.put_token(make_token("t1", "ci", minutes=1))
    assert await store.get_token("t2") == later
    assert await store.get_token("nope") is None
    assert await store.list_tokens() == [earlier, later]

    revoked = await store.revoke_token("t2", T0 + timedelta(hours=1))
    assert revoked.revoked_at == T0 + timedelta(hours=1)
    assert not revoked.usable(T0 + timedelta(hours=2))
    assert await store.get_token("t2") == revoked
    again = await store.revoke_token("t2", T0 + timedelta(hours=3))
    assert again.revoked_at == T0 + timedelta(hours=1)
    with pytest.raises(NotFound):
        await store.revoke_token("nope", T0)
    changes = await store.changes_since(seq)
    assert [(c.kind, c.key) for c in changes] == [("token", "t2"), ("token", "t1"), ("token", "t2")]


async def test_duplicate_token_name_or_id_conflicts(store: SqlStore) -> None:
    await store.put_token(make_token("t1", "ci"))
    with pytest.raises(Conflict, match="named ci"):
        await store.put_token(make_token("t9", "ci"))
    with pytest.raises(Conflict, match="t1"):
        await store.put_token(make_token("t1", "other"))
    assert [t.token_id for t in await store.list_tokens()] == ["t1"]


async def test_audit_newest_first_and_paged(store: SqlStore) -> None:
    seq = await store.last_change_seq()
    appended = [await store.append_audit(make_entry(i, f"/v1/{i}")) for i in range(5)]
    assert [e.seq for e in appended] == sorted({e.seq for e in appended})
    assert appended[0].seq > 0
    assert await store.last_change_seq() == seq  # audit entries are not on the change feed

    newest = await store.list_audit()
    assert newest == list(reversed(appended))
    page1 = await store.list_audit(limit=2)
    assert [e.path for e in page1] == ["/v1/4", "/v1/3"]
    page2 = await store.list_audit(limit=2, before_seq=page1[-1].seq)
    assert [e.path for e in page2] == ["/v1/2", "/v1/1"]
    page3 = await store.list_audit(limit=2, before_seq=page2[-1].seq)
    assert [e.path for e in page3] == ["/v1/0"]
    assert await store.list_audit(before_seq=appended[0].seq) == []
    assert await store.list_audit(limit=0) == []
