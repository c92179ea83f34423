"""The CLI talks to a TLS server, trusting its certificate through HATOBA_CA_CERT."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.cli.test_cli_e2e import env_for
from tests.integration.test_tls import self_signed


def test_cli_over_https_with_its_own_ca(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    env = env_for(home)
    server = subprocess.Popen(
        [sys.executable, "-m", "hatoba.cli.main", "server", "--port", "0",
         "--tls-cert", str(cert), "--tls-key", str(key)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not (home / "server.json").exists():
            assert server.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
        assert '"https://' in (home / "server.json").read_text()

        def cli(*args: str, ca: bool) -> subprocess.CompletedProcess[bytes]:
            e = dict(env)
            if ca:
                e["HATOBA_CA_CERT"] = str(cert)
            return subprocess.run(
                [sys.executable, "-m", "hatoba.cli.main", *args],
                env=e, capture_output=True, timeout=60, check=False,
            )  # fmt: skip

        ok = cli("param", "put", "/tls/x", "1", ca=True)
        assert ok.returncode == 0, ok.stderr.decode()
        assert cli("param", "get", "/tls/x", ca=True).stdout.decode().strip() == "1"
        # without the CA the certificate is not trusted: no silent fallback to an embedded
        # control plane, and nothing changes
        refused = cli("param", "put", "/tls/y", "2", ca=False)
        assert refused.returncode != 0
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(20)
