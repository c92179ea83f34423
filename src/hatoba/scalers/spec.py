"""Metric specs: camelCase JSON, one key per kind, validated with every bad field named by
its JSON path (``metric.redisList.url: ...``). Pure: no I/O here."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator

from hatoba.model.base import WireModel
from hatoba.model.errors import FieldError, ValidationFailed

REDIS_SCHEMES = ("redis", "rediss", "unix")
AMQP_SCHEMES = ("amqp", "amqps")
CELERY_AMQP_SCHEMES = ("amqp", "amqps", "pyamqp")
SQL_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mariadb")
HTTP_SCHEMES = ("http", "https")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def url_scheme(url: str) -> str:
    """The scheme without a SQLAlchemy-style driver suffix: ``mysql+aiomysql`` -> ``mysql``."""
    return urlsplit(url).scheme.lower().split("+", 1)[0]


def _check_url(url: str, schemes: tuple[str, ...]) -> str:
    url = url.strip()
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a bad port
    except ValueError as exc:
        raise ValueError(f"not a valid URL ({exc})") from None
    if url_scheme(url) not in schemes:
        shown = ", ".join(f"{s}://" for s in schemes)
        raise ValueError(f"must be a URL starting with one of {shown}")
    if url_scheme(url) not in ("sqlite", "unix") and not parts.hostname:
        raise ValueError("the URL has no host")
    if url_scheme(url) == "sqlite" and len(parts.path) <= 1:
        raise ValueError("names no database file: sqlite:///relative/path or sqlite:////abs/path")
    return url


def _check_env_name(name: str | None) -> str | None:
    if name is not None and not ENV_NAME.match(name):
        raise ValueError("must be an environment variable name (letters, digits, _)")
    return name


PathPart = str | int
_SEGMENT = re.compile(r"""\.?([^.\[\]]+)|\[(\d+)\]|\[['"]([^'"]+)['"]\]""")


def parse_json_path(path: str) -> tuple[PathPart, ...]:
    """``$.queue.depth``, ``queue.depth``, ``items[0].count``, ``$['a-b'].c`` -> parts."""
    text = path.strip()
    if text.startswith("$"):
        text = text[1:]
    parts: list[PathPart] = []
    pos = 0
    while pos < len(text):
        m = _SEGMENT.match(text, pos)
        if m is None or (m.group(1) is not None and pos > 0 and text[pos] != "."):
            raise ValueError(f"cannot parse jsonPath at {text[pos:]!r}")
        if m.group(1) is not None:
            parts.append(m.group(1))
        elif m.group(2) is not None:
            parts.append(int(m.group(2)))
        else:
            parts.append(m.group(3))
        pos = m.end()
    if not parts:
        raise ValueError("jsonPath names no field (e.g. $.queue.depth)")
    return tuple(parts)


class _Spec(WireModel):
    pass


class _RedisSpec(_Spec):
    url: str = Field(description="redis://[:password@]host:port/db, rediss://, unix://")
    password_from_env: str | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return _check_url(v, REDIS_SCHEMES)

    @field_validator("password_from_env")
    @classmethod
    def _env(cls, v: str | None) -> str | None:
        return _check_env_name(v)


class RedisListSpec(_RedisSpec):
    key: str = Field(min_length=1)


class RedisStreamSpec(_RedisSpec):
    stream: str = Field(min_length=1)
    group: str = Field(min_length=1)
    metric: Literal["pending", "lag"] = "pending"


class SidekiqSpec(_RedisSpec):
    queue: str = Field(default="default", min_length=1)
    metric: Literal["size", "latency"] = "size"
    namespace: str | None = Field(default=None, min_length=1)


class RqSpec(_RedisSpec):
    queue: str = Field(default="default", min_length=1)
    metric: Literal["size", "latency"] = "size"


class CelerySpec(_Spec):
    broker_url: str
    queue: str = Field(default="celery", min_length=1)
    password_from_env: str | None = None

    @field_validator("broker_url")
    @classmethod
    def _url(cls, v: str) -> str:
        return _check_url(v, REDIS_SCHEMES + CELERY_AMQP_SCHEMES)

    @field_validator("password_from_env")
    @classmethod
    def _env(cls, v: str | None) -> str | None:
        return _check_env_name(v)


class RabbitMqSpec(_Spec):
    url: str = Field(description="amqp(s)://user:pass@host:5672/vhost, or the management API")
    queue: str = Field(min_length=1)
    metric: Literal["messagesReady", "messages"] = "messagesReady"
    vhost: str | None = Field(default=None, description="management API URLs only")
    password_from_env: str | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return _check_url(v, AMQP_SCHEMES + HTTP_SCHEMES)

    @field_validator("password_from_env")
    @classmethod
    def _env(cls, v: str | None) -> str | None:
        return _check_env_name(v)

    @model_validator(mode="after")
    def _protocol(self) -> RabbitMqSpec:
        amqp = url_scheme(self.url) in AMQP_SCHEMES
        if amqp and self.metric == "messages":
            raise ValueError(
                "metric 'messages' (ready + unacknowledged) needs the management API: "
                "use an http(s):// management URL, or metric 'messagesReady' over AMQP"
            )
        if amqp and self.vhost is not None:
            raise ValueError("vhost is for management API URLs; over AMQP put it in the URL path")
        return self


class SqlSpec(_Spec):
    url: str = Field(description="sqlite:///path, postgresql://..., mysql://...")
    query: str = Field(min_length=1)
    password_from_env: str | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return _check_url(v, SQL_SCHEMES)

    @field_validator("password_from_env")
    @classmethod
    def _env(cls, v: str | None) -> str | None:
        return _check_env_name(v)


class _HttpSpec(_Spec):
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    headers_from_env: dict[str, str] = Field(
        default_factory=dict, description="header name -> environment variable"
    )
    password_from_env: str | None = Field(default=None, description="basic auth password")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return _check_url(v, HTTP_SCHEMES)

    @field_validator("password_from_env")
    @classmethod
    def _env(cls, v: str | None) -> str | None:
        return _check_env_name(v)

    @field_validator("headers_from_env")
    @classmethod
    def _envs(cls, v: dict[str, str]) -> dict[str, str]:
        for name in v.values():
            _check_env_name(name)
        return v


class HttpSpec(_HttpSpec):
    json_path: str

    @field_validator("json_path")
    @classmethod
    def _path(cls, v: str) -> str:
        parse_json_path(v)
        return v


class PrometheusSpec(_HttpSpec):
    query: str = Field(min_length=1)
    empty_as_zero: bool = False


class CpuSpec(_Spec):
    pass


class MemorySpec(_Spec):
    pass


KindSpec = (
    RedisListSpec
    | RedisStreamSpec
    | SidekiqSpec
    | RqSpec
    | CelerySpec
    | RabbitMqSpec
    | SqlSpec
    | HttpSpec
    | PrometheusSpec
    | CpuSpec
    | MemorySpec
)

KINDS = (
    "redisList",
    "redisStream",
    "sidekiq",
    "rq",
    "celery",
    "rabbitmq",
    "sql",
    "http",
    "prometheus",
    "cpu",
    "memory",
)


class MetricSpec(_Spec):
    """Exactly one kind, plus how often and how long to poll it."""

    redis_list: RedisListSpec | None = None
    redis_stream: RedisStreamSpec | None = None
    sidekiq: SidekiqSpec | None = None
    rq: RqSpec | None = None
    celery: CelerySpec | None = None
    rabbitmq: RabbitMqSpec | None = None
    sql: SqlSpec | None = None
    http: HttpSpec | None = None
    prometheus: PrometheusSpec | None = None
    cpu: CpuSpec | None = None
    memory: MemorySpec | None = None
    poll_interval: float = Field(default=1.0, gt=0, le=3600)
    timeout: float = Field(default=5.0, gt=0, le=600)

    @property
    def kind(self) -> str:
        """The camelCase kind name: ``redisList``, ``sql``, ..."""
        return self._one()[0]

    @property
    def source(self) -> KindSpec:
        """The chosen kind's own settings."""
        return self._one()[1]

    def _one(self) -> tuple[str, KindSpec]:
        for kind in KINDS:
            value = getattr(self, _attr(kind))
            if value is not None:
                return kind, value
        raise ValueError("no metric kind set")  # parse_metric_spec never lets this happen


def _attr(kind: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), kind)


def parse_metric_spec(spec: Mapping[str, Any], path: str = "metric") -> MetricSpec:
    """Validate a metric spec; ``ValidationFailed`` lists every bad field by JSON path."""
    if not isinstance(spec, Mapping):
        raise ValidationFailed([FieldError(path, "must be an object")], "metric")
    errors: list[FieldError] = []
    chosen = [k for k in KINDS if k in spec or _attr(k) in spec]
    if not chosen:
        errors.append(FieldError(path, f"needs one metric kind: one of {', '.join(KINDS)}"))
    elif len(chosen) > 1:
        errors.append(
            FieldError(path, f"has {' and '.join(chosen)}: exactly one metric kind is allowed")
        )
    try:
        parsed = MetricSpec.model_validate(dict(spec))
    except ValidationError as exc:
        errors += [_field_error(path, e) for e in exc.errors()]
        raise ValidationFailed(_unique(errors), "metric") from None
    if errors:
        raise ValidationFailed(errors, "metric")
    return parsed


def _field_error(root: str, error: Any) -> FieldError:
    path = root
    for part in error["loc"]:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if error["type"] == "extra_forbidden":
        message = "unknown field"
    return FieldError(path, message)


def _unique(errors: list[FieldError]) -> list[FieldError]:
    seen: set[tuple[str, str]] = set()
    out: list[FieldError] = []
    for e in errors:
        if (e.path, e.message) not in seen:
            seen.add((e.path, e.message))
            out.append(e)
    return out
