"""Settings from the environment, read once at the edges (CLI, server)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hatoba.model.layout import DataLayout
from hatoba.model.log_outputs import parse_size

DEFAULT_PORT = 7117
DEFAULT_RETENTION_HOURS = 7 * 24.0
DEFAULT_LEASE_TTL = 15.0
DEFAULT_LOG_MAX_BYTES = 10 * 1024**3  # the node's log store, all tasks together
DEFAULT_LOG_MAX_LINE = 1024 * 1024  # the longest line kept in one log record
DEFAULT_LOG_BUFFER_BYTES = 256 * 1024**2  # what one log output may owe (see hatoba.logs.buffer)
DEFAULT_LOG_FLUSH_GRACE = 5.0  # seconds the log outputs get to deliver at shutdown
# ECS's attribute rules: names of letters, digits and ``-_./\\``, values also ``@:`` and
# spaces, each at most 128 characters
_ATTR_NAME = re.compile(r"[A-Za-z0-9_.\-/\\]{1,128}")
_ATTR_VALUE = re.compile(r"[A-Za-z0-9_.\-/\\@: ]{1,128}")
# set by the agent from the machine itself; config may not override them
BUILTIN_ATTRIBUTES = frozenset({"os", "arch", "hostname", "ecs.os-type", "ecs.cpu-architecture"})


class ConfigError(ValueError):
    """A setting from the environment is malformed; the message names the variable."""


def parse_node_attributes(text: str, variable: str = "HATOBA_NODE_ATTRIBUTES") -> dict[str, str]:
    """``"rack=r1,disk=ssd"`` -> ``{"rack": "r1", "disk": "ssd"}``; empty items are skipped."""
    out: dict[str, str] = {}
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        name, eq, value = item.partition("=")
        name, value = name.strip(), value.strip()
        problem = None
        if not eq:
            problem = "expected NAME=VALUE"
        elif not _ATTR_NAME.fullmatch(name):
            problem = "a name is 1-128 letters, digits, '-', '_', '.', '/'"
        elif not _ATTR_VALUE.fullmatch(value):
            problem = "a value is 1-128 letters, digits, spaces, '-', '_', '.', '/', '@', ':'"
        elif name in BUILTIN_ATTRIBUTES:
            problem = f"{name!r} is set by hatoba itself"
        elif name in out:
            problem = f"{name!r} is given twice"
        if problem is not None:
            raise ConfigError(f"{variable}: bad item {item!r}: {problem}")
        out[name] = value
    return out


def default_home() -> Path:
    env = os.environ.get("HATOBA_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "hatoba"


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    stopped_task_retention_hours: float = DEFAULT_RETENTION_HOURS
    tls_cert: Path | None = None  # PEM certificate (chain); with tls_key, serve https
    tls_key: Path | None = None
    node_attributes: Mapping[str, str] = field(default_factory=dict)  # custom node attributes
    # seconds a control plane's service-scheduler lease lasts unrenewed: how long a standby
    # waits to take over after the leader died
    scheduler_lease_ttl: float = DEFAULT_LEASE_TTL
    log_max_bytes: int = DEFAULT_LOG_MAX_BYTES  # HATOBA_LOG_MAX_BYTES
    log_max_line: int = DEFAULT_LOG_MAX_LINE  # HATOBA_LOG_MAX_LINE
    # log outputs (forwarders): HATOBA_LOG_OUTPUTS (inline JSON or a file's path; else
    # HOME/log-outputs.yaml), bytes each may owe before dropping the oldest, shutdown grace
    log_outputs: str | None = None
    log_buffer_bytes: int = DEFAULT_LOG_BUFFER_BYTES  # HATOBA_LOG_BUFFER_BYTES
    log_flush_grace: float = DEFAULT_LOG_FLUSH_GRACE  # HATOBA_LOG_FLUSH_GRACE

    @property
    def layout(self) -> DataLayout:
        return DataLayout(self.home)

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            home=default_home(),
            database_url=os.environ.get("HATOBA_DATABASE_URL") or None,
            host=os.environ.get("HATOBA_HOST", "127.0.0.1"),
            port=int(os.environ.get("HATOBA_PORT", str(DEFAULT_PORT))),
            stopped_task_retention_hours=float(
                os.environ.get("HATOBA_TASK_RETENTION_HOURS", str(DEFAULT_RETENTION_HOURS))
            ),
            tls_cert=_path_env("HATOBA_TLS_CERT"),
            tls_key=_path_env("HATOBA_TLS_KEY"),
            node_attributes=parse_node_attributes(os.environ.get("HATOBA_NODE_ATTRIBUTES", "")),
            scheduler_lease_ttl=_positive_float("HATOBA_SCHEDULER_LEASE_TTL", DEFAULT_LEASE_TTL),
            log_max_bytes=_size("HATOBA_LOG_MAX_BYTES", DEFAULT_LOG_MAX_BYTES),
            log_max_line=_size("HATOBA_LOG_MAX_LINE", DEFAULT_LOG_MAX_LINE, 16, 64 * 1024**2),
            log_outputs=os.environ.get("HATOBA_LOG_OUTPUTS") or None,
            log_buffer_bytes=_size("HATOBA_LOG_BUFFER_BYTES", DEFAULT_LOG_BUFFER_BYTES),
            log_flush_grace=_positive_float("HATOBA_LOG_FLUSH_GRACE", DEFAULT_LOG_FLUSH_GRACE),
        )


def _positive_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}: {raw!r} is not a number") from None
    if value <= 0:
        raise ConfigError(f"{name}: must be > 0, got {raw}")
    return value


def _size(name: str, default: int, low: int = 1, high: int | None = None) -> int:
    """A size in bytes: ``4096``, ``512K``, ``100MiB``, ``10G``."""
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = parse_size(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ConfigError(f"{name}: must be {bounds} bytes, got {raw}")
    return value


def _path_env(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value).expanduser() if value else None
