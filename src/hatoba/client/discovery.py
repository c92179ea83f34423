"""Finding a control plane that is already serving: ``HATOBA_URL``, else ``server.json``.

Starting one when none is found is the CLI's job (``hatoba.cli.connection``): the client
layer sits below ``hatoba.server`` and must not import it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from hatoba.client.http import tls_context
from hatoba.config import Settings
from hatoba.model.layout import DataLayout


@dataclass(frozen=True)
class Endpoint:
    url: str
    token: str
    pid: int | None = None


def read_token(layout: DataLayout) -> str:
    try:
        return layout.token_file.read_text().strip()
    except OSError:
        return ""


def from_environment(settings: Settings, env: Mapping[str, str] | None = None) -> Endpoint | None:
    """``HATOBA_URL`` (with ``HATOBA_TOKEN``, else the data directory's token file)."""
    env = os.environ if env is None else env
    url = env.get("HATOBA_URL")
    if not url:
        return None
    return Endpoint(url.rstrip("/"), env.get("HATOBA_TOKEN") or read_token(settings.layout))


def read_server_file(layout: DataLayout) -> Endpoint | None:
    """The URL and pid a running server published, if its file is there and well-formed."""
    try:
        info = json.loads(layout.server_file.read_text())
        return Endpoint(str(info["url"]).rstrip("/"), read_token(layout), int(info["pid"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        return (
            httpx.get(f"{url}/v1/health", timeout=timeout, verify=tls_context()).status_code == 200
        )
    except httpx.HTTPError:
        return False


def running_server(layout: DataLayout) -> Endpoint | None:
    """The local server from ``server.json`` when its pid is alive and it answers health."""
    found = read_server_file(layout)
    if found is None or found.pid is None or not pid_alive(found.pid):
        return None
    return found if healthy(found.url) else None
