"""Parameters: named, versioned config values and secrets, as in AWS SSM Parameter Store.

Why two models: a stored SecureString holds only its ciphertext envelope, and what the API
returns must say plainly whether a value was withheld. ``StoredParameter`` is one version as
the store keeps it (``value`` for String/StringList, ``ciphertext`` for SecureString);
``ParameterView`` is what callers see (``value`` is ``None`` and ``redacted`` is true unless
the caller asked for, and was allowed, decryption). ``value`` never appears in a repr and
pydantic errors never echo input, so a secret cannot leak through a log line or a traceback.

The rules are SSM's, so names and ``valueFrom`` references written for ECS work unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Literal, NamedTuple, Self

from pydantic import ConfigDict, Field, model_validator

from hatoba.model.base import WireModel
from hatoba.model.errors import Conflict, FieldError, NotFound, ValidationFailed

SUBJECT = "parameter"
MAX_NAME_LENGTH = 1011
MAX_LEVELS = 15
MAX_VALUE_BYTES = 4096  # SSM Standard tier
MAX_LABELS_PER_VERSION = 10
MAX_VERSIONS = 100  # SSM keeps the latest 100 versions of a parameter

_SEGMENT = re.compile(r"[A-Za-z0-9_.-]+")
_LABEL = re.compile(r"[A-Za-z0-9_.-]{1,100}")
_RESERVED = ("aws", "ssm")  # SSM reserves these prefixes (any case) for itself
_ARN = re.compile(r"arn:[^:]+:ssm:[^:]*:[^:]*:parameter/(?P<rest>.*)", re.DOTALL)


class ParameterType(StrEnum):
    STRING = "String"
    STRING_LIST = "StringList"
    SECURE_STRING = "SecureString"


class StoredParameter(WireModel):
    """One version of a parameter as the store keeps it; immutable once written."""

    model_config = ConfigDict(frozen=True, hide_input_in_errors=True)

    name: str
    type: ParameterType
    version: int = Field(ge=1)
    value: str | None = Field(default=None, repr=False)  # String / StringList only
    ciphertext: str | None = None  # SecureString only: an ``hb1:`` envelope
    labels: tuple[str, ...] = ()
    description: str | None = None
    last_modified_at: datetime
    last_modified_by: str | None = None
    data_type: Literal["text"] = "text"

    @model_validator(mode="after")
    def _one_form(self) -> Self:
        secure = self.type is ParameterType.SECURE_STRING
        if secure and (self.ciphertext is None or self.value is not None):
            raise ValueError("a SecureString is stored as ciphertext only")
        if not secure and (self.value is None or self.ciphertext is not None):
            raise ValueError(f"a {self.type.value} is stored as a plain value only")
        return self


class ParameterView(WireModel):
    """A parameter version as the API shows it; ``redacted`` says a value was withheld."""

    model_config = ConfigDict(frozen=True, hide_input_in_errors=True)

    name: str
    type: ParameterType
    version: int
    value: str | None = Field(default=None, repr=False)
    redacted: bool = False
    labels: tuple[str, ...] = ()
    description: str | None = None
    last_modified_at: datetime
    last_modified_by: str | None = None
    data_type: Literal["text"] = "text"

    @classmethod
    def of(cls, stored: StoredParameter, plaintext: str | None = None) -> ParameterView:
        """The view of ``stored``; pass a SecureString's decrypted ``plaintext`` to show it."""
        value = plaintext if stored.type is ParameterType.SECURE_STRING else stored.value
        return cls(
            name=stored.name,
            type=stored.type,
            version=stored.version,
            value=value,
            redacted=value is None,
            labels=stored.labels,
            description=stored.description,
            last_modified_at=stored.last_modified_at,
            last_modified_by=stored.last_modified_by,
        )


class Selector(NamedTuple):
    """A parsed ``valueFrom``: a name, and at most one of a version or a label."""

    name: str
    version: int | None = None
    label: str | None = None


# ---- validators: each returns every problem, so a user fixes them all in one go ----


def name_errors(name: str, path: str = "name") -> list[FieldError]:
    """SSM's name rules; a leading ``/`` is required so every name lives in one hierarchy."""
    if not name.startswith("/"):
        return [FieldError(path, "must start with '/', e.g. /prod/app/db/password")]
    if len(name) > MAX_NAME_LENGTH:
        return [FieldError(path, f"is {len(name)} characters long; at most {MAX_NAME_LENGTH}")]
    segments = name[1:].split("/")
    if any(not s for s in segments):
        return [FieldError(path, "has an empty path segment ('//' or a trailing '/')")]
    bad = [s for s in segments if not _SEGMENT.fullmatch(s)]
    if bad:
        return [FieldError(path, f"segment {bad[0]!r} may use only letters, digits and _ . -")]
    if len(segments) > MAX_LEVELS:
        return [FieldError(path, f"has {len(segments)} levels; at most {MAX_LEVELS}")]
    if segments[0].lower().startswith(_RESERVED):
        return [FieldError(path, "may not begin with 'aws' or 'ssm' (any case): reserved")]
    return []


def path_errors(path_value: str, path: str = "path") -> list[FieldError]:
    """A get-by-path prefix: ``/`` alone, or a valid name with an optional trailing ``/``."""
    if path_value == "/":
        return []
    trimmed = path_value[:-1] if path_value.endswith("/") and len(path_value) > 1 else path_value
    return name_errors(trimmed, path)


def label_errors(labels: Sequence[str], path: str = "labels") -> list[FieldError]:
    """SSM's label rules. Not starting with a digit keeps ``name:3`` unambiguous."""
    errors: list[FieldError] = []
    if len(labels) > MAX_LABELS_PER_VERSION:
        errors.append(FieldError(path, f"has {len(labels)} labels; at most 10 per version"))
    for i, label in enumerate(labels):
        where = f"{path}[{i}]"
        if not _LABEL.fullmatch(label):
            errors.append(FieldError(where, "must be 1-100 letters, digits, _ . or -"))
        elif label[0].isdigit():
            errors.append(FieldError(where, "may not begin with a digit"))
        elif label.lower().startswith(_RESERVED):
            errors.append(FieldError(where, "may not begin with 'aws' or 'ssm' (any case)"))
    return errors


def value_errors(type_: ParameterType, value: str, path: str = "value") -> list[FieldError]:
    """Size and StringList shape. Messages never quote the value: it may be a secret."""
    size = len(value.encode("utf-8"))
    if size == 0:
        return [FieldError(path, "must not be empty")]
    if size > MAX_VALUE_BYTES:
        return [FieldError(path, f"is {size} bytes; at most {MAX_VALUE_BYTES} (UTF-8)")]
    if type_ is ParameterType.STRING_LIST and any(not item for item in value.split(",")):
        return [FieldError(path, "a StringList is comma-separated with no empty items")]
    return []


def parse_type(raw: object, path: str = "type") -> ParameterType:
    """``String``, ``StringList`` or ``SecureString``; anything else is a field error."""
    for t in ParameterType:
        if raw == t.value:
            return t
    allowed = ", ".join(t.value for t in ParameterType)
    raise ValidationFailed([FieldError(path, f"must be one of {allowed}")], SUBJECT)


def check_put(name: str, type_: ParameterType, value: str, labels: Sequence[str] = ()) -> None:
    """Everything a write must satisfy; raises ``ValidationFailed`` listing every problem."""
    errors = name_errors(name) + value_errors(type_, value) + label_errors(labels)
    if errors:
        raise ValidationFailed(errors, SUBJECT)


# ---- selectors, hierarchy, versions ----


def parse_selector(value_from: str, path: str = "valueFrom") -> Selector:
    """Parse the ECS ``valueFrom`` forms: ``/a/b``, ``/a/b:3``, ``/a/b:LABEL`` and the ARN
    ``arn:aws:ssm:REGION:ACCOUNT:parameter/a/b[:sel]`` (the ARN drops the name's leading
    slash; it is put back). Region and account are ignored: hatoba has one store.
    """
    body = value_from
    match = _ARN.fullmatch(value_from)
    if match:
        body = "/" + match["rest"]
    elif value_from.startswith("arn:"):
        msg = "only SSM parameter ARNs (arn:aws:ssm:REGION:ACCOUNT:parameter/NAME) are supported"
        raise ValidationFailed([FieldError(path, msg)], SUBJECT)
    name, sep, sel = body.partition(":")
    errors = name_errors(name, path)
    version: int | None = None
    label: str | None = None
    if sep and not sel:
        errors.append(FieldError(path, "has an empty version or label after ':'"))
    elif sel.isdigit():
        version = int(sel)
        if version < 1:
            errors.append(FieldError(path, "versions start at 1"))
    elif sel:
        label = sel
        errors += [FieldError(path, e.message) for e in label_errors([sel], path)]
    if errors:
        raise ValidationFailed(errors, SUBJECT)
    return Selector(name, version, label)


def is_under(path: str, name: str, recursive: bool) -> bool:
    """Whether get-by-path ``path`` returns ``name``: direct children only, unless recursive.

    ``path`` itself is not under itself, and ``/prod`` does not contain ``/production/x``.
    """
    prefix = path if path.endswith("/") else path + "/"
    if not name.startswith(prefix) or len(name) == len(prefix):
        return False
    return recursive or "/" not in name[len(prefix) :]


def next_version(existing: Iterable[int]) -> int:
    """The version a new write gets: one past the highest ever, 1 for a new parameter."""
    return max(existing, default=0) + 1


def pick_version(versions: Sequence[StoredParameter], selector: Selector) -> StoredParameter:
    """The version a selector names (the latest when it names none), or ``NotFound``."""
    if not versions:
        raise NotFound(f"parameter {selector.name} not found")
    if selector.version is not None:
        found = [v for v in versions if v.version == selector.version]
        what = f"version {selector.version}"
    elif selector.label is not None:
        found = [v for v in versions if selector.label in v.labels]
        what = f"label {selector.label}"
    else:
        return max(versions, key=lambda v: v.version)
    if not found:
        raise NotFound(f"parameter {selector.name} has no {what}")
    return found[0]


def relabel(
    current: Mapping[int, Sequence[str]], version: int, labels: Sequence[str]
) -> dict[int, tuple[str, ...]]:
    """Attach ``labels`` to ``version``, moving each off whichever version held it (SSM:
    a label names one version at a time). Returns the new labels of every version.
    """
    errors = label_errors(labels)
    if version not in current:
        errors.append(FieldError("parameterVersion", f"version {version} does not exist"))
    if errors:
        raise ValidationFailed(errors, SUBJECT)
    moving = set(labels)
    out = {v: tuple(lb for lb in held if lb not in moving) for v, held in current.items()}
    out[version] = tuple(dict.fromkeys([*out[version], *labels]))
    if len(out[version]) > MAX_LABELS_PER_VERSION:
        msg = f"version {version} would have {len(out[version])} labels; at most 10"
        raise ValidationFailed([FieldError("labels", msg)], SUBJECT)
    return out


def version_to_evict(current: Mapping[int, Sequence[str]]) -> int | None:
    """Before adding a version when ``MAX_VERSIONS`` exist, the oldest goes; SSM refuses the
    write (``Conflict``) if that oldest version still carries a label, as it would be lost.
    """
    if len(current) < MAX_VERSIONS:
        return None
    oldest = min(current)
    if current[oldest]:
        raise Conflict(
            f"version {oldest} is the oldest of {MAX_VERSIONS} and has labels; "
            "move its labels before writing a new version"
        )
    return oldest
