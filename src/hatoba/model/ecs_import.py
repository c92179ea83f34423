"""Read ECS task-definition JSON into a ``TaskDefinition``, and write it back out.

Why a separate step from ``TaskDefinition.model_validate``: user input needs more than
validation. It may be ``describe-task-definition`` output (a wrapper, response-only fields),
it deserves warnings for what hatoba will not do, typos deserve "did you mean", and errors
must name JSON paths as the user wrote them (camelCase, ``[i]``), every one at once.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from hatoba.model.ecs_fields import (
    ASSIGNED_FIELDS,
    ASSIGNED_MESSAGE,
    CONTAINER_FIELDS_NOT_USED,
    DESCRIBE_WRAPPER_KEY,
    DESCRIBE_WRAPPER_SIBLINGS,
    IMAGE_MESSAGE,
    NOT_USED_MESSAGE,
    TASK_FIELDS_NOT_USED,
)
from hatoba.model.errors import FieldError, ValidationFailed
from hatoba.model.taskdef import ContainerDefinition, TaskDefinition
from hatoba.model.taskdef_checks import check_container, check_task_definition, container_path

SUBJECT = "task definition"

# Fields users never write: hatoba's bookkeeping, not part of the ECS JSON form.
_HATOBA_ONLY = frozenset({"ignored"})
# Model fields hatoba assigns (the store): not user input, never exported as ECS input.
ASSIGNED_NAMES = frozenset({"revision", "status", "registered_at", "deregistered_at"})
_UNITS = {
    "memory": "MiB",
    "memoryReservation": "MiB",
    "cpu": "cpu units",
    "interval": "seconds",
    "timeout": "seconds",
    "startPeriod": "seconds",
    "stopTimeout": "seconds",
}
# Names of fields ECS knows but that live elsewhere than where the user put them, per model.
_ALSO_KNOWN: dict[type[BaseModel], frozenset[str]] = {
    TaskDefinition: TASK_FIELDS_NOT_USED,
    ContainerDefinition: CONTAINER_FIELDS_NOT_USED,
}


@dataclass(frozen=True)
class ParsedTaskDefinition:
    task_definition: TaskDefinition
    warnings: list[FieldError] = field(default_factory=list)


def parse_task_definition(data: Mapping[str, Any]) -> ParsedTaskDefinition:
    """Validate ECS ``RegisterTaskDefinition`` JSON (or describe output) into a model.

    Raises ``ValidationFailed`` listing every bad field by JSON path. ``revision``, ``status``
    and the other fields ECS assigns are dropped with a warning: hatoba assigns its own.
    """
    if not isinstance(data, Mapping):
        raise ValidationFailed([FieldError("", "must be a JSON object")], SUBJECT)
    warnings: list[FieldError] = []
    prefix = ""
    body = dict(data)
    if DESCRIBE_WRAPPER_KEY in body and "family" not in body:
        body, prefix = _unwrap(body, warnings)

    for key in [k for k in body if k in ASSIGNED_FIELDS]:
        del body[key]
        warnings.append(FieldError(key, ASSIGNED_MESSAGE))

    try:
        td = TaskDefinition.model_validate(body)
    except ValidationError as exc:
        errors = [_field_error(e) for e in exc.errors()]
        errors += _checks_of_valid_containers(body.get("containerDefinitions"))
        raise ValidationFailed(_prefixed(_unique(errors), prefix), SUBJECT) from None

    findings = check_task_definition(td)
    if findings.errors:
        raise ValidationFailed(_prefixed(findings.errors, prefix), SUBJECT)
    warnings += _ignored_warnings(td) + findings.warnings
    return ParsedTaskDefinition(td, _prefixed(warnings, prefix))


def export_task_definition(td: TaskDefinition, *, include_assigned: bool = False) -> dict[str, Any]:
    """ECS camelCase JSON, with the kept-but-unused fields put back where they came from.

    Only fields that were set are written, nulls never (so ``export(parse(x)) == x`` up to
    the normalized task ``cpu``/``memory``, written as strings of units/MiB as ECS does).
    A model reloaded from a dump made without ``exclude_unset`` has every field "set", so
    its export spells out defaults too (``"cpu": 0``, ``"essential": true``, ...). With
    ``include_assigned``, adds what describe-task-definition would: ``taskDefinitionArn``
    (hatoba's ``family:revision``), ``revision``, ``status``, ``registeredAt``, ``deregisteredAt``.
    """
    rest: dict[str, Any] = td.model_dump(
        mode="json",
        by_alias=True,
        exclude_unset=True,
        exclude_none=True,
        exclude=set(ASSIGNED_NAMES) | {"family", "ignored", "container_definitions"},
    )
    out: dict[str, Any] = {
        "family": td.family,
        "containerDefinitions": [
            {
                **c.model_dump(
                    mode="json",
                    by_alias=True,
                    exclude_unset=True,
                    exclude_none=True,
                    exclude={"ignored"},
                ),
                **c.ignored,
            }
            for c in td.container_definitions
        ],
        **rest,
    }
    for key in ("cpu", "memory"):
        if out.get(key) is not None:
            out[key] = str(out[key])
    out.update(td.ignored)
    if include_assigned:
        out["taskDefinitionArn"] = td.arn
        out["revision"] = td.revision
        out["status"] = td.status.value
        if td.registered_at is not None:
            out["registeredAt"] = td.registered_at.isoformat()
        if td.deregistered_at is not None:
            out["deregisteredAt"] = td.deregistered_at.isoformat()
    return out


def _unwrap(body: dict[str, Any], warnings: list[FieldError]) -> tuple[dict[str, Any], str]:
    """``{"taskDefinition": {...}, "tags": [...]}`` from describe-task-definition."""
    inner = body[DESCRIBE_WRAPPER_KEY]
    if not isinstance(inner, Mapping):
        raise ValidationFailed([FieldError(DESCRIBE_WRAPPER_KEY, "must be a JSON object")], SUBJECT)
    out = dict(inner)
    for key, value in body.items():
        if key == DESCRIBE_WRAPPER_KEY:
            continue
        if key in DESCRIBE_WRAPPER_SIBLINGS and key not in out:
            out[key] = value
        else:
            warnings.append(FieldError(key, f"ignored (outside {DESCRIBE_WRAPPER_KEY})"))
    return out, DESCRIBE_WRAPPER_KEY + "."


def _ignored_warnings(td: TaskDefinition) -> list[FieldError]:
    """One warning per kept-but-unused field that carries a value.

    Empty values (``"mountPoints": []`` in every describe output) are kept but not warned
    about: they ask for nothing hatoba fails to do.
    """
    out = [FieldError(key, NOT_USED_MESSAGE) for key, value in td.ignored.items() if _has(value)]
    for i, c in enumerate(td.container_definitions):
        at = container_path(i)
        if c.image is not None:
            out.append(FieldError(f"{at}.image", IMAGE_MESSAGE))
        out += [
            FieldError(f"{at}.{key}", NOT_USED_MESSAGE)
            for key, value in c.ignored.items()
            if _has(value)
        ]
    return out


def _has(value: Any) -> bool:
    return value not in (None, [], {})


def _checks_of_valid_containers(raw: Any) -> list[FieldError]:
    """Cross-field errors of containers that are valid on their own.

    So one bad field elsewhere does not hide, say, a missing command until the next attempt.
    """
    if not isinstance(raw, list):
        return []
    errors: list[FieldError] = []
    for i, item in enumerate(raw):
        try:
            c = ContainerDefinition.model_validate(item)
        except ValidationError:
            continue
        errors += check_container(i, c).errors
    return errors


def _unique(errors: list[FieldError]) -> list[FieldError]:
    return list(dict.fromkeys(errors))


def _prefixed(errors: list[FieldError], prefix: str) -> list[FieldError]:
    if not prefix:
        return errors
    return [
        FieldError(prefix + e.path if e.path else prefix.rstrip("."), e.message) for e in errors
    ]


# -- pydantic errors -> FieldError ------------------------------------------------------------


def _field_error(error: ErrorDetails) -> FieldError:
    parts, model = _wire_loc(error["loc"])
    path = json_path(parts)
    kind = error["type"]
    ctx = error.get("ctx") or {}
    unit = _UNITS.get(str(parts[-1])) if parts else None
    suffix = f" ({unit})" if unit else ""
    if kind == "extra_forbidden":
        return FieldError(path, _unknown_field_message(str(parts[-1]), model))
    if kind == "missing":
        return FieldError(path, "field required")
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return FieldError(path, str(ctx["error"]))
    if kind == "greater_than_equal":
        return FieldError(path, f"must be ≥ {ctx['ge']}{suffix}")
    if kind == "less_than_equal":
        return FieldError(path, f"must be ≤ {ctx['le']}{suffix}")
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return FieldError(path, "must be an integer" + suffix)
    if kind == "too_short" and ctx.get("min_length") == 1:
        return FieldError(path, "must not be empty")
    if kind == "string_too_short":
        return FieldError(path, "must not be empty")
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return FieldError(path, "must be a JSON object")
    return FieldError(path, _humane(error["msg"]))


def _humane(msg: str) -> str:
    """Pydantic's "Input should be a valid list" -> "must be a valid list"."""
    return msg.replace("Input should be", "must be").replace("Field required", "field required")


def _wire_loc(loc: tuple[int | str, ...]) -> tuple[list[int | str], type[BaseModel] | None]:
    """Map a pydantic ``loc`` to wire names, and find the model owning its last key.

    Pydantic reports the name the input used; with ``populate_by_name`` that can be the
    snake_case one, but users read the camelCase (ECS) spelling.
    """
    model: type[BaseModel] | None = TaskDefinition
    owner: type[BaseModel] | None = TaskDefinition
    parts: list[int | str] = []
    for item in loc:
        if isinstance(item, int) or model is None:
            parts.append(item)
            continue
        owner = model
        name = _field_name(model, item)
        if name is None:
            parts.append(item)
            model = None
            continue
        info = model.model_fields[name]
        parts.append(info.alias or name)
        model = _model_in(info.annotation)
    return parts, owner


def _field_name(model: type[BaseModel], key: str) -> str | None:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return name
    return None


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model class inside ``X``, ``list[X]``, ``X | None`` or ``Annotated[X, ...]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (list, typing.Union, types.UnionType, typing.Annotated):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def _wire_names(model: type[BaseModel]) -> set[str]:
    return {
        info.alias or name
        for name, info in model.model_fields.items()
        if name not in _HATOBA_ONLY and name not in ASSIGNED_NAMES
    } | set(_ALSO_KNOWN.get(model, frozenset()))


def _unknown_field_message(key: str, model: type[BaseModel] | None) -> str:
    candidates: set[str] = set()
    if model is TaskDefinition and key in _wire_names(ContainerDefinition):
        return "unknown task-level field; it is a container field (move it into a container)"
    if model is ContainerDefinition and key in _wire_names(TaskDefinition):
        return "unknown container field; it is a task-level field (move it out of the container)"
    if model is not None:
        candidates = _wire_names(model)
    lowered = {c.lower(): c for c in candidates}
    close = difflib.get_close_matches(key.lower(), list(lowered), n=1, cutoff=0.6)
    if close:
        return f"unknown field; did you mean {lowered[close[0]]!r}?"
    return "unknown field (neither ECS nor hatoba has it here)"


def json_path(parts: list[int | str]) -> str:
    """``["containerDefinitions", 1, "healthCheck"]`` -> ``containerDefinitions[1].healthCheck``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.isidentifier():
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out
