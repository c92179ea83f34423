"""The app file (``hatoba.yaml``): parameters, task definitions, services, the one-off
tasks that run before a deploy and jobs, declared in one place and applied together.

Pure: text in, an ``AppFile`` (or every problem at once) out. Problems carry the file's line,
the JSON path and a message, as ``hatoba.yaml:14: taskDefinitions.api.containerDefinitions[0]
.memory: must be ...``, so an editor or a human jumps straight to them. Each section is checked
by the validators the API itself uses (``parse_task_definition``, ``ServiceSpec``, the
parameter rules), so a file that loads here is one the server accepts.

``${VAR}`` and ``${VAR:-default}`` are replaced in string values (not keys) from the
``env`` mapping given, plus ``HATOBA_APP_DIR`` (the file's absolute directory); ``$${`` is
a literal ``${``. A variable that is undefined and has no default is an error.
"""

from __future__ import annotations

import ast
import contextlib
import datetime as dt
import difflib
import json
import os
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from hatoba.model.ecs_import import parse_task_definition
from hatoba.model.errors import FieldError, ValidationFailed
from hatoba.model.job import JobSpec
from hatoba.model.params import ParameterType, name_errors, value_errors
from hatoba.model.service import ServiceSpec
from hatoba.model.taskdef import TaskDefinition

if typing.TYPE_CHECKING:
    from hatoba.model.appfile_scaling import ScalingDecl

DEFAULT_FILE = "hatoba.yaml"
APP_DIR_VAR = "HATOBA_APP_DIR"
DEFAULT_BEFORE_DEPLOY_TIMEOUT = 3600.0
SECTIONS = ("name", "parameters", "taskDefinitions", "services", "beforeDeploy", "jobs")
PARAMETER_KEYS = ("type", "value", "description")
BEFORE_DEPLOY_KEYS = ("taskDefinition", "timeoutSeconds")

Part = str | int
Loc = tuple[Part, ...]  # where a node is: keys and list indexes from the top

_SUBST = re.compile(r"\$\$\{|\$\{(?P<body>[^}]*)\}|\$\{")
_VAR = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>.*))?", re.DOTALL)
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")
_TD_ARN = re.compile(r"arn:[^:]+:ecs:[^:]*:[^:]*:task-definition/(?P<rest>.+)")
_TD_REF = re.compile(r"(?P<family>[A-Za-z0-9_-]{1,255})(?::(?P<revision>[0-9]+))?")
# the validators' JSON paths: .name, [3], ['odd key']
_PATH_TOKEN = re.compile(
    r"\.?(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|\[(?P<index>\d+)\]"
    r"|\[(?P<quoted>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")\]"
)


# -- what a loaded file holds -------------------------------------------------------------------


@dataclass(frozen=True)
class TaskDefRef:
    """A task definition a service or beforeDeploy task names: ``family`` alone means the
    revision apply registers (or keeps) for a family declared in the file, else the family's
    latest ACTIVE revision on the server; ``family:revision`` means exactly that one."""

    family: str
    revision: int | None = None
    declared: bool = False  # a bare family declared in this file

    def __str__(self) -> str:
        return self.family if self.revision is None else f"{self.family}:{self.revision}"


@dataclass(frozen=True)
class ParameterDecl:
    name: str
    type: ParameterType
    value: str = field(repr=False)
    description: str | None = None


@dataclass(frozen=True)
class TaskDefinitionDecl:
    family: str
    body: dict[str, Any]  # the ECS JSON to register (substituted, ``family`` filled in)
    task_definition: TaskDefinition


@dataclass(frozen=True)
class ServiceDecl:
    name: str
    spec: ServiceSpec
    task_definition: TaskDefRef
    scaling: ScalingDecl | None = None  # its ``scaling:`` block (see ``appfile_scaling``)


@dataclass(frozen=True)
class JobDecl:
    """A job of the ``jobs:`` section (see ``appfile_jobs``): its task definition is
    resolved by the server at each launch, so a bare family follows new revisions."""

    name: str
    spec: JobSpec
    task_definition: TaskDefRef


@dataclass(frozen=True)
class BeforeDeployTask:
    task_definition: TaskDefRef
    timeout_seconds: float = DEFAULT_BEFORE_DEPLOY_TIMEOUT
    index: int = 0


@dataclass(frozen=True)
class AppFile:
    filename: str
    name: str | None = None
    parameters: dict[str, ParameterDecl] = field(default_factory=dict)
    task_definitions: dict[str, TaskDefinitionDecl] = field(default_factory=dict)
    services: dict[str, ServiceDecl] = field(default_factory=dict)
    before_deploy: list[BeforeDeployTask] = field(default_factory=list)
    jobs: dict[str, JobDecl] = field(default_factory=dict)  # in apply order (targets first)
    warnings: list[FieldError] = field(default_factory=list)  # paths as "file:line: path"
    lines: dict[Loc, int] = field(default_factory=dict, repr=False)

    def where(self, parts: Loc) -> str:
        """``hatoba.yaml:14: services.api.desiredCount``: the nearest line the file has."""
        return locate(self.filename, self.lines, parts)

    def error(self, parts: Loc, message: str) -> FieldError:
        return FieldError(self.where(parts), message)


def format_path(parts: Loc) -> str:
    """``("taskDefinitions", "api", "containerDefinitions", 0)`` ->
    ``taskDefinitions.api.containerDefinitions[0]``; odd keys as ``["/a/b"]``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part, ensure_ascii=False)}]"
    return out


def line_of(lines: Mapping[Loc, int], parts: Loc) -> int:
    """The line of the deepest node of ``parts`` the file has (a missing field: its parent)."""
    for n in range(len(parts), 0, -1):
        if parts[:n] in lines:
            return lines[parts[:n]]
    return 1


def locate(filename: str, lines: Mapping[Loc, int], parts: Loc) -> str:
    line = line_of(lines, parts)
    path = format_path(parts)
    return f"{filename}:{line}: {path}" if path else f"{filename}:{line}"


def split_path(path: str) -> Loc:
    """Parse a validator's JSON path (``containerDefinitions[0].environment['A B']``)."""
    parts: list[Part] = []
    pos = 0
    while pos < len(path):
        m = _PATH_TOKEN.match(path, pos)
        if m is None or m.end() == pos:
            parts.append(path[pos:])  # not ours to parse: keep the rest whole
            break
        if m["name"] is not None:
            parts.append(m["name"])
        elif m["index"] is not None:
            parts.append(int(m["index"]))
        else:
            parts.append(str(_unquote(m["quoted"])))
        pos = m.end()
    return tuple(parts)


def _unquote(text: str) -> str:
    value = ast.literal_eval(text)
    return value if isinstance(value, str) else text


def parse_taskdef_ref(text: str) -> tuple[str, int | None] | None:
    """``web`` / ``web:3`` / an ECS task-definition ARN -> (family, revision); else None."""
    m = _TD_ARN.fullmatch(text)
    if m:
        text = m["rest"]
    m = _TD_REF.fullmatch(text)
    if m is None:
        return None
    rev = m["revision"]
    return m["family"], int(rev) if rev is not None else None


# -- loading ------------------------------------------------------------------------------------


def load_app_file(
    text: str, filename: str, env: Mapping[str, str], *, app_dir: str | None = None
) -> AppFile:
    """Parse and validate an app file; raises ``ValidationFailed`` (``subject=filename``)
    listing every problem with its ``file:line: path``."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    try:
        doc = YAML(typ="rt", pure=True).load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = re.sub(r' with value ".*', "", str(exc.problem or exc.context or "bad YAML"))
        raise ValidationFailed(
            [FieldError(f"{filename}:{line}", f"invalid YAML: {problem}")], filename
        ) from None
    except YAMLError as exc:
        raise ValidationFailed(
            [FieldError(f"{filename}:1", f"invalid YAML: {exc}")], filename
        ) from None
    variables = dict(env)
    variables[APP_DIR_VAR] = app_dir or os.path.dirname(os.path.abspath(filename))
    loader = _Loader(filename, variables)
    data = loader.plain(doc, ())
    return loader.build(data)


class _Loader:
    def __init__(self, filename: str, env: Mapping[str, str]) -> None:
        self.filename = filename
        self.env = env
        self.lines: dict[Loc, int] = {(): 1}
        self.errors: list[tuple[Loc, str]] = []
        self.warnings: list[tuple[Loc, str]] = []

    # -- YAML nodes -> plain data, lines recorded, variables substituted ------------------------
    def plain(self, node: Any, at: Loc) -> Any:
        from ruamel.yaml.comments import CommentedMap, CommentedSeq

        if isinstance(node, CommentedMap):
            out: dict[Any, Any] = {}
            for key, value in node.items():
                here = (*at, str(key))
                self.lines[here] = _line(node.lc.key, key, self.lines.get(at, 1))
                out[key if isinstance(key, str) else str(key)] = self.plain(value, here)
            return out
        if isinstance(node, CommentedSeq):
            items: list[Any] = []
            for i, value in enumerate(node):
                here = (*at, i)
                self.lines[here] = _line(node.lc.item, i, self.lines.get(at, 1))
                items.append(self.plain(value, here))
            return items
        if isinstance(node, bool) or node is None:
            return node
        if isinstance(node, int):
            return int(node)
        if isinstance(node, float):
            return float(node)
        if isinstance(node, dt.date):
            return node.isoformat()
        if isinstance(node, str):
            return self.substitute(str(node), at)
        return node

    def substitute(self, text: str, at: Loc) -> str:
        if "$" not in text:
            return text

        def one(m: re.Match[str]) -> str:
            whole = m.group(0)
            if whole == "$${":
                return "${"
            body = m["body"]
            if body is None:
                self.errors.append((at, "unterminated ${ (write $${ for a literal ${)"))
                return whole
            var = _VAR.fullmatch(body)
            if var is None:
                self.errors.append(
                    (at, f"bad substitution ${{{body}}}: write ${{NAME}} or ${{NAME:-default}}")
                )
                return whole
            value = self.env.get(var["name"])
            if var["default"] is not None and not value:
                return str(var["default"])
            if value is None:
                name = var["name"]
                self.errors.append(
                    (at, f"undefined variable ${{{name}}} (set it, or write ${{{name}:-default}})")
                )
                return whole
            return value

        return _SUBST.sub(one, text)

    # -- sections ---------------------------------------------------------------------------------
    def build(self, data: Any) -> AppFile:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            self.errors.append(((), "the app file must be a mapping (parameters:, services:, ...)"))
            data = {}
        for key in data:
            if key not in SECTIONS:
                self.errors.append(((key,), _unknown(key, SECTIONS, "top-level key")))
        name = data.get("name")
        if name is not None and not isinstance(name, str):
            self.errors.append((("name",), "must be a string"))
            name = None
        params = self.parameters(self.section(data, "parameters", dict))
        tds = self.task_definitions(self.section(data, "taskDefinitions", dict))
        services = self.services(self.section(data, "services", dict), tds)
        before = self.before_deploy(self.section(data, "beforeDeploy", list), tds)
        jobs = self.jobs(self.section(data, "jobs", dict), tds)
        if self.errors:
            raise ValidationFailed(self._located(self.errors), self.filename)
        return AppFile(
            filename=self.filename,
            name=name,
            parameters=params,
            task_definitions=tds,
            services=services,
            before_deploy=before,
            jobs=jobs,
            warnings=self._located(self.warnings),
            lines=self.lines,
        )

    def section(self, data: dict[str, Any], key: str, kind: type) -> Any:
        value = data.get(key)
        if value is None:
            return kind()
        if not isinstance(value, kind):
            what = "a mapping" if kind is dict else "a list"
            self.errors.append(((key,), f"must be {what}"))
            return kind()
        return value

    def parameters(self, raw: dict[str, Any]) -> dict[str, ParameterDecl]:
        out: dict[str, ParameterDecl] = {}
        for name, body in raw.items():
            at: Loc = ("parameters", name)
            errors = [(at, e.message) for e in name_errors(name)]
            if not isinstance(body, dict):
                self.errors += [*errors, (at, "must be a mapping {type: ..., value: ...}")]
                continue
            for key in body:
                if key not in PARAMETER_KEYS:
                    errors.append(((*at, key), _unknown(key, PARAMETER_KEYS, "field")))
            type_ = _parameter_type(body.get("type"))
            if type_ is None:
                allowed = ", ".join(t.value for t in ParameterType)
                missing = "type" not in body
                errors.append(
                    ((*at, "type"), "field required" if missing else f"must be one of {allowed}")
                )
            value = body.get("value")
            if isinstance(value, int) and not isinstance(value, bool):
                value = str(value)
            if value is None:
                errors.append(((*at, "value"), "field required"))
            elif not isinstance(value, str):
                errors.append(((*at, "value"), 'must be a string (quote it: "...")'))
            else:
                checked = type_ or ParameterType.STRING
                errors += [((*at, "value"), e.message) for e in value_errors(checked, value)]
            description = body.get("description")
            if description is not None and not isinstance(description, str):
                errors.append(((*at, "description"), "must be a string"))
            self.errors += errors
            if not errors and type_ is not None and isinstance(value, str):
                out[name] = ParameterDecl(name, type_, value, description)
        return out

    def task_definitions(self, raw: dict[str, Any]) -> dict[str, TaskDefinitionDecl]:
        out: dict[str, TaskDefinitionDecl] = {}
        for family, body in raw.items():
            at: Loc = ("taskDefinitions", family)
            if not isinstance(body, dict):
                self.errors.append((at, "must be a mapping (ECS RegisterTaskDefinition JSON)"))
                continue
            if "family" in body and body["family"] != family:
                self.errors.append(((*at, "family"), f"must be {family!r} (the key) or left out"))
                continue
            full = {"family": family, **body}
            try:
                parsed = parse_task_definition(full)
            except ValidationFailed as exc:
                self.errors += [((*at, *split_path(e.path)), e.message) for e in exc.errors]
                continue
            self.warnings += [((*at, *split_path(w.path)), w.message) for w in parsed.warnings]
            out[family] = TaskDefinitionDecl(family, full, parsed.task_definition)
        return out

    def services(
        self, raw: dict[str, Any], tds: dict[str, TaskDefinitionDecl]
    ) -> dict[str, ServiceDecl]:
        out: dict[str, ServiceDecl] = {}
        for name, body in raw.items():
            at: Loc = ("services", name)
            if not isinstance(body, dict):
                self.errors.append((at, "must be a mapping (ECS CreateService fields)"))
                continue
            given = body.get("serviceName", body.get("service_name", name))
            if given != name:
                self.errors.append(
                    ((*at, "serviceName"), f"must be {name!r} (the key) or left out")
                )
                continue
            full = {k: v for k, v in body.items() if k != "scaling"} | {"serviceName": name}
            scaling = None
            if "scaling" in body:
                scaling = self.scaling((*at, "scaling"), name, body["scaling"], full)
            invalid = self.service_invalid(at, full)
            ref = self.ref(full.get("taskDefinition"), (*at, "taskDefinition"), tds)
            if invalid or ref is None:
                continue
            spec = ServiceSpec.model_validate(full)
            out[name] = ServiceDecl(name, spec, ref, scaling)
        return out

    def scaling(self, at: Loc, service: str, raw: Any, full: dict[str, Any]) -> ScalingDecl | None:
        """The service's ``scaling:`` block; without a ``desiredCount`` the service starts
        at ``minCapacity``."""
        from hatoba.model.appfile_scaling import load_scaling

        decl = load_scaling(self, at, service, raw)
        if full.get("schedulingStrategy") == "DAEMON":
            self.errors.append((at, "a DAEMON service runs one task per node; it cannot scale"))
        if decl is not None and "desiredCount" not in full:
            full["desiredCount"] = decl.min_capacity
        return decl

    def service_invalid(self, at: Loc, body: dict[str, Any]) -> bool:
        try:
            ServiceSpec.model_validate(body)
        except ValidationError as exc:
            for err in exc.errors():
                loc = tuple(err["loc"])
                if loc and loc[0] in ("serviceName", "service_name"):
                    message = "service name must be a letter, then letters, digits, - or _"
                    self.errors.append((at, message + " (at most 255)"))
                    continue
                self.errors.append(((*at, *loc), _pydantic_message(ServiceSpec, err)))
            return True
        return False

    def ref(self, raw: Any, at: Loc, tds: Mapping[str, TaskDefinitionDecl]) -> TaskDefRef | None:
        if not isinstance(raw, str) or not raw.strip():
            return None  # the model's own check reports it
        parsed = parse_taskdef_ref(raw)
        if parsed is None:
            self.errors.append((at, f"{raw!r} is not FAMILY or FAMILY:REVISION"))
            return None
        family, revision = parsed
        return TaskDefRef(family, revision, declared=revision is None and family in tds)

    def before_deploy(
        self, raw: list[Any], tds: dict[str, TaskDefinitionDecl]
    ) -> list[BeforeDeployTask]:
        out: list[BeforeDeployTask] = []
        for i, body in enumerate(raw):
            at: Loc = ("beforeDeploy", i)
            if not isinstance(body, dict):
                self.errors.append((at, "must be a mapping {taskDefinition: ..., ...}"))
                continue
            bad = [k for k in body if k not in BEFORE_DEPLOY_KEYS]
            for key in bad:
                self.errors.append(((*at, key), _unknown(key, BEFORE_DEPLOY_KEYS, "field")))
            td = body.get("taskDefinition")
            if td is None:
                self.errors.append(((*at, "taskDefinition"), "field required"))
            elif not isinstance(td, str) or not td.strip():
                self.errors.append(((*at, "taskDefinition"), "must be a non-empty string"))
            ref = self.ref(td, (*at, "taskDefinition"), tds)
            timeout = body.get("timeoutSeconds", DEFAULT_BEFORE_DEPLOY_TIMEOUT)
            if isinstance(timeout, str):
                with contextlib.suppress(ValueError):
                    timeout = float(timeout)
            ok_timeout = isinstance(timeout, int | float) and not isinstance(timeout, bool)
            if not ok_timeout or timeout <= 0:
                self.errors.append(((*at, "timeoutSeconds"), "must be a number > 0 (seconds)"))
            elif ref is not None and not bad:
                out.append(BeforeDeployTask(ref, float(timeout), i))
        return out

    def jobs(self, raw: dict[str, Any], tds: dict[str, TaskDefinitionDecl]) -> dict[str, JobDecl]:
        from hatoba.model.appfile_jobs import load_jobs

        return load_jobs(self, raw, tds)

    def _located(self, problems: list[tuple[Loc, str]]) -> list[FieldError]:
        """In file order (a stable sort keeps each line's problems in the order found)."""
        unique = list(dict.fromkeys(problems))
        ordered = sorted(unique, key=lambda item: line_of(self.lines, item[0]))
        return [FieldError(locate(self.filename, self.lines, p), m) for p, m in ordered]


def _line(get: typing.Callable[[Any], Any], key: Any, fallback: int) -> int:
    try:
        return int(get(key)[0]) + 1
    except (KeyError, IndexError, TypeError, AttributeError):
        return fallback  # e.g. a key merged in with <<: has no position of its own


def _parameter_type(raw: Any) -> ParameterType | None:
    for t in ParameterType:
        if raw == t.value:
            return t
    return None


def _unknown(key: str, known: tuple[str, ...] | list[str] | set[str], what: str) -> str:
    close = difflib.get_close_matches(str(key), list(known), n=1, cutoff=0.6)
    if close:
        return f"unknown {what}; did you mean {close[0]!r}?"
    return f"unknown {what} (expected one of: {', '.join(known)})"


# -- pydantic errors (ServiceSpec) -> messages ------------------------------------------------


def _pydantic_message(root: type[BaseModel], err: ErrorDetails) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    loc = tuple(err["loc"])
    if kind == "extra_forbidden":
        owner = _model_at(root, loc[:-1])
        known = sorted(
            info.alias or name
            for name, info in (owner.model_fields.items() if owner else [])
            if name not in ("service_name", "job_name")
        )
        return _unknown(str(loc[-1]), known, "field")
    if kind == "missing":
        return "field required"
    if kind == "greater_than_equal":
        return f"must be ≥ {ctx['ge']}"
    if kind == "less_than_equal":
        return f"must be ≤ {ctx['le']}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return "must be an integer"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "must be a mapping"
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return str(ctx["error"])
    return err["msg"].replace("Input should be", "must be")


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    current: type[BaseModel] | None = model
    for key in loc:
        if current is None or isinstance(key, int):
            continue
        found = None
        for name, info in current.model_fields.items():
            if key in (name, info.alias):
                found = info.annotation
        current = _model_in(found)
    return current


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
