from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from hatoba.model.access import (
    ApiToken,
    Principal,
    Role,
    hash_token,
    matches,
    new_token_secret,
    token_id_of,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_roles_are_cumulative() -> None:
    assert Role.ADMIN.at_least(Role.DEPLOYER)
    assert Role.DEPLOYER.at_least(Role.OPERATOR)
    assert not Role.OPERATOR.at_least(Role.DEPLOYER)
    assert not Role.VIEWER.at_least(Role.OPERATOR)


def test_scopes_limit_reach() -> None:
    batch = Principal(name="batch", role=Role.OPERATOR, scopes=["family:report-*", "job:nightly"])
    assert batch.reaches("family:report-daily")
    assert batch.reaches("job:nightly")
    assert not batch.reaches("family:web")
    assert Principal(name="all", role=Role.OPERATOR).reaches("family:web")


def test_token_secret_round_trip() -> None:
    token_id, token = new_token_secret()
    assert token_id_of(token) == token_id
    assert matches(token, hash_token(token))
    assert not matches(token + "x", hash_token(token))
    assert token_id_of("not-a-token") is None


def test_token_usable_and_scope_validation() -> None:
    tok = ApiToken(
        token_id="abc",
        name="ci",
        role=Role.DEPLOYER,
        secret_hash="x",
        created_at=T0,
        created_by="admin",
        expires_at=T0 + timedelta(days=1),
    )
    assert tok.usable(T0)
    assert not tok.usable(T0 + timedelta(days=2))
    assert not tok.model_copy(update={"revoked_at": T0}).usable(T0)
    with pytest.raises(ValidationError, match="scope like"):
        ApiToken.model_validate({**tok.model_dump(), "scopes": ["bogus"]})
