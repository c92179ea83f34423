"""Parsing the ways users name things: ``family``, ``family:3``, or an ECS ARN."""

from __future__ import annotations

import re

from hatoba.model.errors import FieldError, ValidationFailed

_ARN = re.compile(r"^arn:[^:]+:ecs:[^:]*:[^:]*:task-definition/(?P<rest>.+)$")
_REF = re.compile(r"^(?P<family>[A-Za-z0-9_-]{1,255})(?::(?P<revision>[0-9]+))?$")


def parse_taskdef_ref(ref: str, path: str = "taskDefinition") -> tuple[str, int | None]:
    """``web`` -> ("web", None) (latest ACTIVE); ``web:3`` -> ("web", 3)."""
    m = _ARN.match(ref)
    if m:
        ref = m.group("rest")
    m = _REF.match(ref)
    if not m:
        raise ValidationFailed(
            [FieldError(path, f"{ref!r} is not FAMILY or FAMILY:REVISION")],
            subject="request",
        )
    rev = m.group("revision")
    return m.group("family"), int(rev) if rev is not None else None
