"""A real `hatoba` control plane in a subprocess, for benchmarks (HTTP end to end)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from hatoba.client.http import no_delay_transport

SERVER = (
    "import asyncio; from hatoba.config import Settings; from hatoba.server import run_server;"
    "run_server(Settings.from_env())"
)


class BenchServer:
    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="hatoba-bench-")
        self.home = Path(self._tmp.name) / "home"
        self.home.mkdir()
        env = {**os.environ, "HATOBA_HOME": str(self.home), "HATOBA_PORT": "0"}
        self.proc = subprocess.Popen([sys.executable, "-c", SERVER], env=env)
        deadline = time.monotonic() + 30
        while True:
            try:
                info = json.loads((self.home / "server.json").read_text())
                break
            except (OSError, ValueError):
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("server did not start") from None
                time.sleep(0.05)
        token = (self.home / "token").read_text().strip()
        self.http = httpx.Client(
            base_url=info["url"],
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
            transport=no_delay_transport(),
        )

    def call(self, method: str, path: str, **kw: Any) -> Any:
        r = self.http.request(method, path, **kw)
        r.raise_for_status()
        return r.json()

    def close(self) -> None:
        self.http.close()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
        self._tmp.cleanup()


def percentile(values: list[float], p: float) -> float:
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))
    return s[k]
