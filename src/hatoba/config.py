"""Settings from the environment, read once at the edges (CLI, server)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from hatoba.model.layout import DataLayout

DEFAULT_PORT = 7117
DEFAULT_RETENTION_HOURS = 7 * 24.0


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
        )


def _path_env(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value).expanduser() if value else None
