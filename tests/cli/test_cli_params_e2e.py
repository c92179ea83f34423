"""``hatoba param``, ``hatoba token`` and ``hatoba audit`` end to end against a real server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.cli.test_cli_e2e import env_for, served

__all__ = ["served"]

SECRET = "tr0ub4dor-and-3-correct-horses"


def cli(home: Path, *args: str, token: str | None = None, stdin: bytes | None = None):  # type: ignore[no-untyped-def]
    env = env_for(home)
    if token is not None:
        env["HATOBA_TOKEN"] = token
        env["HATOBA_URL"] = json.loads((home / "server.json").read_text())["url"]
    return subprocess.run(
        [sys.executable, "-m", "hatoba.cli.main", *args],
        env=env,
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
    )


def test_secure_string_round_trip_and_roles(served: Path) -> None:
    put = cli(served, "param", "put", "/e2e/db/password", "--type", "SecureString",
              "--value-file", "-", stdin=SECRET.encode() + b"\n")  # fmt: skip
    assert put.returncode == 0, put.stderr.decode()
    hidden = cli(served, "param", "get", "/e2e/db/password")
    assert hidden.returncode == 0 and SECRET.encode() not in hidden.stdout + hidden.stderr
    shown = cli(served, "param", "get", "/e2e/db/password", "--decrypt")
    assert shown.stdout.decode().strip() == SECRET
    listed = cli(served, "-o", "json", "param", "list", "/e2e")
    assert SECRET.encode() not in listed.stdout
    assert json.loads(listed.stdout)[0]["redacted"] is True

    made = cli(served, "-o", "json", "token", "create", "reader", "--role", "viewer")
    assert made.returncode == 0, made.stderr.decode()
    secret = json.loads(made.stdout)["secret"]
    denied = cli(served, "param", "put", "/e2e/other", "x", token=secret)
    assert denied.returncode == 1
    assert b"deployer" in denied.stderr
    assert cli(served, "param", "get", "/e2e/db/password", token=secret).returncode == 0
    no_decrypt = cli(served, "param", "get", "/e2e/db/password", "--decrypt", token=secret)
    assert no_decrypt.returncode == 1 and SECRET.encode() not in no_decrypt.stdout

    token_id = json.loads(made.stdout)["token"]["tokenId"]
    assert cli(served, "token", "revoke", token_id).returncode == 0
    assert cli(served, "param", "list", token=secret).returncode == 1

    audit = cli(served, "-o", "json", "audit", "--limit", "20")
    entries = json.loads(audit.stdout)
    assert any(e["path"].startswith("/v1/parameters/e2e") and e["status"] == 403 for e in entries)
    assert SECRET.encode() not in audit.stdout
