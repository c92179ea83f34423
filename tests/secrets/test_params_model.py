"""The parameter model: SSM's name/label/value rules, selectors, paths, versions, views."""

from __future__ import annotations

from datetime import UTC, datetime

import pydantic
import pytest

from hatoba.model.errors import Conflict, NotFound, ValidationFailed
from hatoba.model.params import (
    MAX_VERSIONS,
    ParameterType,
    ParameterView,
    Selector,
    StoredParameter,
    check_put,
    is_under,
    label_errors,
    name_errors,
    next_version,
    parse_selector,
    parse_type,
    path_errors,
    pick_version,
    relabel,
    value_errors,
    version_to_evict,
)
from hatoba.secrets.protocol import SecretRef, SecretUnavailable
from hatoba.secrets.refs import parse_refs

SECRET = "hunter2-distinctive-9b1e"
T0 = datetime(2024, 5, 1, tzinfo=UTC)
S, SL, SS = ParameterType.STRING, ParameterType.STRING_LIST, ParameterType.SECURE_STRING


def _paths(exc: ValidationFailed) -> list[str]:
    return [e.path for e in exc.errors]


@pytest.mark.parametrize("name", ["/a", "/prod/cardscan/db/password", "/a.b/c-d/E_9"])
def test_good_names(name):
    assert name_errors(name) == []


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("prod/db", "must start with '/'"),
        ("/", "empty path segment"),
        ("/a//b", "empty path segment"),
        ("/a/", "empty path segment"),
        ("/a b", "may use only"),
        ("/a/b:c", "may use only"),
        ("/" + "/".join("x" * 16), "16 levels"),
        ("/" + "x" * 1011, "at most 1011"),
        ("/aws/reference", "reserved"),
        ("/SSM-thing", "reserved"),
    ],
)
def test_bad_names_name_the_field(name, fragment):
    errors = name_errors(name)
    assert [e.path for e in errors] == ["name"]
    assert fragment in errors[0].message


def test_fifteen_levels_allowed():
    assert name_errors("/" + "/".join("x" * 15)) == []


def test_labels():
    assert label_errors(["prod", "v2.1-rc_1", "x" * 100]) == []
    errors = label_errors(["ok", "1st", "AwsThing", "ssm", "a b", "x" * 101, ""])
    assert [e.path for e in errors] == [f"labels[{i}]" for i in range(1, 7)]
    assert label_errors(["l"] * 11)[0].path == "labels"


def test_values():
    assert value_errors(S, "x" * 4096) == []
    assert value_errors(SL, "a,b,c") == []
    too_big = "é" * 2049  # 4098 bytes in UTF-8
    assert [e.path for e in value_errors(SS, too_big)] == ["value"]
    assert "4098 bytes" in value_errors(SS, too_big)[0].message
    for bad in ("a,,b", "a,", ",a"):
        assert "no empty items" in value_errors(SL, bad)[0].message
    assert value_errors(S, "")[0].message == "must not be empty"
    assert value_errors(S, "a,,b") == []  # only StringList cares about commas


def test_check_put_lists_every_error_and_never_quotes_the_value():
    with pytest.raises(ValidationFailed) as info:
        check_put("no-slash", SS, SECRET * 300, ["ok", "aws-x"])
    assert _paths(info.value) == ["name", "value", "labels[1]"]
    assert SECRET not in str(info.value) and SECRET not in repr(info.value)
    check_put("/a/b", SS, SECRET)


def test_parse_type():
    assert parse_type("SecureString") is SS
    with pytest.raises(ValidationFailed) as info:
        parse_type("securestring")
    assert _paths(info.value) == ["type"]


@pytest.mark.parametrize(
    ("value_from", "expected"),
    [
        ("/a/b", Selector("/a/b")),
        ("/a/b:3", Selector("/a/b", version=3)),
        ("/a/b:prod", Selector("/a/b", label="prod")),
        ("arn:aws:ssm:us-east-1:123456789012:parameter/a/b", Selector("/a/b")),
        ("arn:aws:ssm:eu-west-1:123456789012:parameter/a/b:12", Selector("/a/b", version=12)),
        ("arn:aws-cn:ssm:cn-north-1:1:parameter/a/b:live", Selector("/a/b", label="live")),
        ("arn:aws:ssm:us-east-1:123456789012:parameter/plain", Selector("/plain")),
    ],
)
def test_parse_selector(value_from, expected):
    assert parse_selector(value_from) == expected


@pytest.mark.parametrize(
    ("value_from", "fragment"),
    [
        ("a/b", "must start with '/'"),
        ("/a/b:", "empty version or label"),
        ("/a/b:0", "start at 1"),
        ("/a/b:1x:2", "letters, digits"),
        ("/a/b:awslabel", "aws"),
        ("arn:aws:secretsmanager:us-east-1:1:secret:db", "only SSM parameter ARNs"),
        ("arn:aws:ssm:us-east-1:1:parameter//a", "empty path segment"),
    ],
)
def test_bad_selectors_name_value_from(value_from, fragment):
    with pytest.raises(ValidationFailed) as info:
        parse_selector(value_from)
    assert set(_paths(info.value)) == {"valueFrom"}
    assert fragment in str(info.value)


def test_parse_refs_lists_every_bad_reference():
    refs = [SecretRef("DB", "/a/b:2"), SecretRef("X", "nope"), SecretRef("Y", "/c:")]
    with pytest.raises(SecretUnavailable) as info:
        parse_refs(refs)
    assert "X (valueFrom nope)" in str(info.value) and "Y (valueFrom /c:)" in str(info.value)
    assert parse_refs(refs[:1]) == {"DB": Selector("/a/b", version=2)}


@pytest.mark.parametrize(
    ("path", "name", "recursive", "expected"),
    [
        ("/prod", "/prod/db", False, True),
        ("/prod/", "/prod/db", False, True),
        ("/prod", "/prod/db/password", False, False),
        ("/prod", "/prod/db/password", True, True),
        ("/prod", "/prod", True, False),
        ("/prod", "/production/x", True, False),
        ("/", "/top", False, True),
        ("/", "/top/child", False, False),
        ("/", "/top/child", True, True),
    ],
)
def test_is_under(path, name, recursive, expected):
    assert is_under(path, name, recursive) is expected


def test_path_errors():
    assert path_errors("/") == path_errors("/prod/") == path_errors("/prod") == []
    assert [e.path for e in path_errors("prod")] == ["path"]


def _stored(version: int, labels=(), type_=S) -> StoredParameter:
    secure = type_ is SS
    return StoredParameter(
        name="/a",
        type=type_,
        version=version,
        value=None if secure else f"v{version}",
        ciphertext="hb1:00000000:x:y" if secure else None,
        labels=tuple(labels),
        last_modified_at=T0,
    )


def test_versions():
    assert next_version([]) == 1 and next_version([1, 2, 5]) == 6
    versions = [_stored(1, ["old"]), _stored(2), _stored(3, ["live"])]
    assert pick_version(versions, Selector("/a")).version == 3
    assert pick_version(versions, Selector("/a", version=2)).version == 2
    assert pick_version(versions, Selector("/a", label="old")).version == 1
    for sel in (Selector("/a", version=9), Selector("/a", label="nope")):
        with pytest.raises(NotFound):
            pick_version(versions, sel)
    with pytest.raises(NotFound):
        pick_version([], Selector("/a"))


def test_relabel_moves_labels():
    out = relabel({1: ("live", "x"), 2: ()}, 2, ["live"])
    assert out == {1: ("x",), 2: ("live",)}
    with pytest.raises(ValidationFailed) as info:
        relabel({1: ()}, 7, ["9bad"])
    assert _paths(info.value) == ["labels[0]", "parameterVersion"]


def test_version_to_evict():
    assert version_to_evict({1: ()}) is None
    full: dict[int, tuple[str, ...]] = dict.fromkeys(range(1, MAX_VERSIONS + 1), ())
    assert version_to_evict(full) == 1
    with pytest.raises(Conflict):
        version_to_evict({**full, 1: ("keep",)})


def test_stored_forms_and_views():
    ss = _stored(1, type_=SS)
    view = ParameterView.of(ss)
    assert view.value is None and view.redacted
    shown = ParameterView.of(ss, SECRET)
    assert shown.value == SECRET and not shown.redacted
    assert SECRET not in repr(shown) and SECRET not in str(shown)
    assert str(shown.wire()["lastModifiedAt"]).startswith("2024-05-01")
    assert ParameterView.of(_stored(2)).value == "v2"
    with pytest.raises(pydantic.ValidationError) as info:  # a SecureString never holds plaintext
        StoredParameter(name="/a", type=SS, version=1, value=SECRET, last_modified_at=T0)
    assert SECRET not in str(info.value)
    with pytest.raises(pydantic.ValidationError):
        StoredParameter(name="/a", type=S, version=1, ciphertext="hb1:x", last_modified_at=T0)
    assert StoredParameter.model_validate(ss.wire()) == ss
