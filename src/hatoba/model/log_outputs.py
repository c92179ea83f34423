"""Log outputs (forwarders): what they are and where their settings come from. Pure: no I/O.

Two sources of outputs, both ending as an ``OutputSpec``:

- a container's ``logConfiguration`` in its task definition, in ECS's shapes: the ``fluentd``
  driver (``fluentd-address``, ``tag``, ...) and FireLens (``awsfirelens`` with ``Name``
  ``forward`` | ``http`` | ``file`` and Fluent Bit's options for that output). Any other driver
  or FireLens output keeps the logs local only, with a registration warning;
- the cluster-wide list (``HATOBA_LOG_OUTPUTS`` or ``HATOBA_HOME/log-outputs.yaml``), in
  hatoba's camelCase shape (``ClusterOutputs``), each output with a ``match`` rule by
  family/service/container.

The two add up: a container's logs go to its task definition's output, if any, and to every
cluster output whose rule matches it.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, TypeAdapter

from hatoba.model.base import WireModel
from hatoba.model.errors import FieldError

DEFAULT_FORWARD_PORT = 24224
DEFAULT_CHUNK_RECORDS = 1000
DEFAULT_CHUNK_BYTES = 1024 * 1024
DEFAULT_ROTATE_BYTES = 100 * 1024 * 1024
# the fields a tag or file-path template may use, e.g. "hatoba.{family}.{container}"
TEMPLATE_FIELDS = frozenset(
    {"family", "revision", "container", "task_id", "task_id_short", "service", "node", "image"}
)
# Docker's fluentd-driver tag markup, translated to ours
_DOCKER_TAG = {
    "{{.ID}}": "{task_id_short}",
    "{{.FullID}}": "{task_id}",
    "{{.Name}}": "{container}",
    "{{.ImageName}}": "{image}",
    "{{.ImageFullID}}": "{image}",
    "{{.ImageID}}": "{image}",
    "{{.DaemonName}}": "hatoba",
}
_SIZE_RE = re.compile(r"^\s*(\d+)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_OUTPUT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def parse_size(text: object) -> int:
    """``"256MiB"``, ``"100M"``, ``"1g"``, ``"4096"`` -> bytes (K/M/G/T are powers of 1024)."""
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0:
            raise ValueError("must be ≥ 0")
        return text
    if not isinstance(text, str):
        raise ValueError("must be a number of bytes or a size like 100MiB")
    m = _SIZE_RE.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a size like 4096, 512K, 100MiB or 1G")
    return int(m.group(1)) << (10 * " kmgt".index((m.group(2) or " ").lower()))


def check_template(template: str) -> str:
    for _, name, spec, conv in string.Formatter().parse(template):
        if name is None:
            continue
        if name not in TEMPLATE_FIELDS or spec or conv:
            fields = ", ".join("{" + f + "}" for f in sorted(TEMPLATE_FIELDS))
            raise ValueError(f"unknown placeholder {{{name}}} in {template!r} (use {fields})")
    return template


Template = Annotated[str, AfterValidator(check_template)]
Size = Annotated[int, BeforeValidator(parse_size)]


def _check_output_name(value: str) -> str:
    if not _OUTPUT_NAME_RE.match(value):
        raise ValueError("must be 1-100 letters, digits, '_', '.' or '-', starting alphanumeric")
    return value


class Balance(StrEnum):
    ROUND_ROBIN = "roundRobin"  # every healthy node in turn, in proportion to its weight
    FAILOVER = "failover"  # the first healthy node in order; the others are standbys


class ForwardNode(WireModel):
    host: str = Field(min_length=1)
    port: int = Field(default=DEFAULT_FORWARD_PORT, ge=1, le=65535)
    weight: int = Field(default=1, ge=1, le=1000)


class Match(WireModel):
    """Glob patterns (``fnmatch``); an empty list matches everything."""

    families: list[str] = Field(default_factory=list)
    services: list[str] = Field(default_factory=list)
    containers: list[str] = Field(default_factory=list)

    def matches(self, family: str, service: str | None, container: str) -> bool:
        def ok(patterns: list[str], value: str | None) -> bool:
            if not patterns:
                return True
            return value is not None and any(fnmatch.fnmatchcase(value, p) for p in patterns)

        return (
            ok(self.families, family)
            and ok(self.services, service)
            and ok(self.containers, container)
        )


class OutputBase(WireModel):
    name: Annotated[str, AfterValidator(_check_output_name)]
    match: Match = Field(default_factory=Match)
    chunk_records: int = Field(default=DEFAULT_CHUNK_RECORDS, ge=1, le=1_000_000)
    chunk_bytes: Size = DEFAULT_CHUNK_BYTES
    # the most a down output may owe before its oldest records are dropped;
    # None: HATOBA_LOG_BUFFER_BYTES
    buffer_bytes: Size | None = None


class ForwardOutput(OutputBase):
    """Fluentd's forward protocol (PackedForward, or CompressedPackedForward with gzip)."""

    type: Literal["forward"] = "forward"
    nodes: list[ForwardNode] = Field(min_length=1)
    balance: Balance = Balance.ROUND_ROBIN
    tag: Template = "hatoba.{family}.{container}"
    require_ack: bool = True
    ack_timeout: float = Field(default=30.0, gt=0)
    connect_timeout: float = Field(default=5.0, gt=0)
    compress: Literal["gzip", "none"] = "none"
    time_as_integer: bool = False
    # a node that failed waits this long before it is tried again, doubling up to the max
    retry_min: float = Field(default=1.0, gt=0)
    retry_max: float = Field(default=30.0, gt=0)


class HttpOutput(OutputBase):
    """POSTs newline-delimited JSON; 2xx delivers, 5xx/429/no connection retry, 4xx drops."""

    type: Literal["http"] = "http"
    url: str = Field(pattern=r"^https?://")
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: float = Field(default=10.0, gt=0)
    tls_verify: bool = True
    retry_min: float = Field(default=1.0, gt=0)
    retry_max: float = Field(default=30.0, gt=0)


class FileOutput(OutputBase):
    """Appends JSON lines to ``path`` (a template), fsynced per batch, rotated by size."""

    type: Literal["file"] = "file"
    path: Template = Field(min_length=1)
    rotate_bytes: Size = DEFAULT_ROTATE_BYTES
    rotate_keep: int = Field(default=5, ge=0, le=1000)
    retry_min: float = Field(default=1.0, gt=0)
    retry_max: float = Field(default=30.0, gt=0)


OutputSpec = Annotated[ForwardOutput | HttpOutput | FileOutput, Field(discriminator="type")]
OUTPUT_SPEC: TypeAdapter[ForwardOutput | HttpOutput | FileOutput] = TypeAdapter(OutputSpec)


class ClusterOutputs(WireModel):
    """The cluster-wide outputs: ``{"outputs": [...]}`` (a bare list is accepted too)."""

    outputs: list[OutputSpec] = Field(default_factory=list)

    def by_name(self) -> dict[str, ForwardOutput | HttpOutput | FileOutput]:
        return {o.name: o for o in self.outputs}


def render(template: str, values: Mapping[str, str]) -> str:
    return template.format_map({k: values.get(k, "") for k in TEMPLATE_FIELDS})


# ---- ECS logConfiguration -> OutputSpec ----------------------------------------------------

FORWARDED_DRIVERS = frozenset({"fluentd", "awsfirelens"})
FIRELENS_OUTPUTS = frozenset({"forward", "http", "file"})
_FLUENTD_IGNORED = frozenset(
    {
        "fluentd-async",
        "fluentd-async-connect",
        "fluentd-buffer-limit",
        "fluentd-retry-wait",
        "fluentd-max-retries",
        "mode",
        "max-buffer-size",
        "env",
        "env-regex",
        "labels",
        "labels-regex",
    }
)
_FIRELENS_IGNORED = frozenset(
    {"match", "retry_limit", "send_options", "workers", "net.keepalive", "storage.total_limit_size"}
)
LOCAL_ONLY = "logs stay local (hatoba forwards the fluentd driver and awsfirelens with Name "
LOCAL_ONLY += "forward, http or file); `hatoba logs` reads them"


@dataclass
class LogConfigResult:
    spec: ForwardOutput | HttpOutput | FileOutput | None = None
    errors: list[FieldError] = field(default_factory=list)
    warnings: list[FieldError] = field(default_factory=list)


def taskdef_output_name(family: str, container: str, spec: Mapping[str, Any]) -> str:
    """A stable name for a task definition's output: same options, same output (and offsets)."""
    digest = hashlib.sha256(repr(sorted(spec.items())).encode()).hexdigest()[:8]
    return f"{family or 'task'}.{container}.{digest}"[-100:]


def output_from_log_configuration(
    family: str,
    container: str,
    driver: str,
    options: Mapping[str, str],
    *,
    at: str = "logConfiguration",
    has_secret_options: bool = False,
) -> LogConfigResult:
    """Map an ECS ``logConfiguration`` to an output (``spec`` None: logs stay local only).

    Errors and warnings name the option by JSON path under ``at``."""
    out = LogConfigResult()
    if has_secret_options and driver in FORWARDED_DRIVERS:
        out.warnings.append(
            FieldError(f"{at}.secretOptions", "not used by hatoba's outputs; use options")
        )
    if driver == "fluentd":
        raw = _fluentd(options, at, out)
    elif driver == "awsfirelens":
        raw = _firelens(options, at, out)
    else:
        out.warnings.append(FieldError(f"{at}.logDriver", f"{driver!r}: {LOCAL_ONLY}"))
        return out
    if raw is None or out.errors:
        return out
    raw["name"] = taskdef_output_name(family, container, raw)
    try:
        out.spec = OUTPUT_SPEC.validate_python(raw)
    except ValueError as exc:
        out.errors.append(FieldError(f"{at}.options", _first_error(exc)))
    return out


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(p) for p in first["loc"][1:])  # [0]: the output type
        return f"{where}: {first['msg']}" if where else str(first["msg"])
    return str(exc)


def _opt(at: str, key: str) -> str:
    return f"{at}.options['{key}']"


def _bool(value: str, path: str, out: LogConfigResult) -> bool:
    low = value.strip().lower()
    if low in ("true", "on", "yes", "1"):
        return True
    if low in ("false", "off", "no", "0"):
        return False
    out.errors.append(FieldError(path, f"{value!r} is not true or false"))
    return False


def parse_nodes(text: str, path: str, out: LogConfigResult) -> list[dict[str, Any]]:
    """``"host:port[*weight],..."`` (``tcp://`` allowed) -> node dicts."""
    nodes: list[dict[str, Any]] = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        addr, _, weight = item.removeprefix("tcp://").partition("*")
        if addr.startswith("unix://"):
            out.errors.append(FieldError(path, "unix sockets are not supported; use host:port"))
            continue
        host, _, port = addr.rpartition(":") if ":" in addr else (addr, "", "")
        host = host.strip("[]")
        if not host or (port and not port.isdigit()) or (weight and not weight.isdigit()):
            out.errors.append(FieldError(path, f"{item!r} is not host:port or host:port*weight"))
            continue
        nodes.append(
            {"host": host, "port": int(port or DEFAULT_FORWARD_PORT), "weight": int(weight or 1)}
        )
    if not nodes and not out.errors:
        out.errors.append(FieldError(path, "names no node (host:port)"))
    return nodes


def _fluentd(options: Mapping[str, str], at: str, out: LogConfigResult) -> dict[str, Any] | None:
    raw: dict[str, Any] = {"type": "forward", "tag": "hatoba.{family}.{container}"}
    raw["nodes"] = parse_nodes(
        options.get("fluentd-address", "localhost:24224"), _opt(at, "fluentd-address"), out
    )
    for key, value in options.items():
        path = _opt(at, key)
        if key == "fluentd-address":
            continue
        if key == "tag":
            tag = value
            for docker, ours in _DOCKER_TAG.items():
                tag = tag.replace(docker, ours)
            try:
                raw["tag"] = check_template(tag)
            except ValueError as exc:
                out.errors.append(FieldError(path, str(exc)))
        elif key == "fluentd-request-ack":
            raw["requireAck"] = _bool(value, path, out)
        elif key == "fluentd-sub-second-precision":
            raw["timeAsInteger"] = not _bool(value, path, out)
        elif key == "hatoba-balance":
            raw["balance"] = value
        elif key.startswith("hatoba-"):
            continue  # hatoba's capture options (``hatoba.model.taskdef_logs``)
        elif key in _FLUENTD_IGNORED:
            out.warnings.append(
                FieldError(path, "not used: hatoba buffers on disk and retries until delivered")
            )
        else:
            out.warnings.append(FieldError(path, "unknown fluentd option, ignored"))
    return raw


def _firelens(options: Mapping[str, str], at: str, out: LogConfigResult) -> dict[str, Any] | None:
    keys = {k.lower(): k for k in options}  # Fluent Bit's keys are case-insensitive
    name_key = keys.get("name")
    name = options[name_key].strip().lower() if name_key else ""
    if name not in FIRELENS_OUTPUTS:
        what = f"Name {name!r}" if name_key else "no Name"
        out.warnings.append(FieldError(_opt(at, name_key or "Name"), f"{what}: {LOCAL_ONLY}"))
        return None
    get = {low: options[k] for low, k in keys.items()}
    used = {"name"}
    raw: dict[str, Any] = {"type": name}
    tag = get.get("tag", "{container}-firelens-{task_id}")  # ECS's FireLens tag
    used.add("tag")
    if name == "forward":
        raw["tag"] = tag
        used |= {"host", "port", "upstream", "require_ack_response", "compress"}
        used |= {"time_as_integer", "hatoba_balance"}
        if "upstream" in get:
            path = _opt(at, keys["upstream"])
            raw["nodes"] = parse_nodes(get["upstream"], path, out)
        else:
            host, port = get.get("host", "127.0.0.1"), get.get("port", "24224")
            raw["nodes"] = parse_nodes(f"{host}:{port}", _opt(at, keys.get("port", "Host")), out)
        if "require_ack_response" in get:
            path = _opt(at, keys["require_ack_response"])
            raw["requireAck"] = _bool(get["require_ack_response"], path, out)
        if "compress" in get:
            raw["compress"] = get["compress"].strip().lower()
        if "time_as_integer" in get:
            path = _opt(at, keys["time_as_integer"])
            raw["timeAsInteger"] = _bool(get["time_as_integer"], path, out)
        if "hatoba_balance" in get:
            raw["balance"] = get["hatoba_balance"]
    elif name == "http":
        used |= {"host", "port", "uri", "tls", "tls.verify", "header", "format"}
        used |= {"http_user", "http_passwd"}
        tls = _bool(get["tls"], _opt(at, keys["tls"]), out) if "tls" in get else False
        host = get.get("host", "127.0.0.1")
        port = get.get("port", "443" if tls else "80")
        uri = get.get("uri", "/")
        raw["url"] = f"{'https' if tls else 'http'}://{host}:{port}/{uri.lstrip('/')}"
        if "tls.verify" in get:
            raw["tlsVerify"] = _bool(get["tls.verify"], _opt(at, keys["tls.verify"]), out)
        headers: dict[str, str] = {}
        if "header" in get:
            hname, _, hvalue = get["header"].strip().partition(" ")
            headers[hname] = hvalue.strip()
        if "http_user" in get:
            cred = f"{get['http_user']}:{get.get('http_passwd', '')}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(cred).decode("ascii")
        raw["headers"] = headers
        fmt = get.get("format", "json_lines").lower()
        if fmt != "json_lines":
            out.warnings.append(
                FieldError(_opt(at, keys["format"]), "hatoba sends json_lines only")
            )
    else:  # file
        used |= {"path", "file", "format", "rotate_size", "rotate_keep"}
        if "path" not in get:
            out.errors.append(FieldError(_opt(at, "Path"), "the file output needs a Path"))
            return None
        file_name = get.get("file", tag)  # Fluent Bit's default file name is the tag
        raw["path"] = get["path"].rstrip("/") + "/" + file_name
        if "rotate_size" in get:
            raw["rotateBytes"] = get["rotate_size"]
        if "rotate_keep" in get:
            raw["rotateKeep"] = get["rotate_keep"]
        if get.get("format", "plain").lower() != "plain":
            out.warnings.append(
                FieldError(_opt(at, keys["format"]), "hatoba writes JSON lines only")
            )
    for low, key in keys.items():
        if low.startswith("hatoba-"):
            continue  # hatoba's capture options (``hatoba.model.taskdef_logs``)
        if low in _FIRELENS_IGNORED:
            out.warnings.append(FieldError(_opt(at, key), "not used by hatoba"))
        elif low not in used:
            out.warnings.append(FieldError(_opt(at, key), f"unknown {name} option, ignored"))
    return raw
