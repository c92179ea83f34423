"""``HATOBA_TLS_CERT``/``HATOBA_TLS_KEY``: the server speaks https and says so."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import ssl
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hatoba.config import Settings
from hatoba.model.errors import HatobaError
from hatoba.server import Running, serve


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_server_speaks_https(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    settings = Settings(home=tmp_path / "home", port=0, tls_cert=cert, tls_key=key)
    ready: asyncio.Future[Running] = asyncio.get_running_loop().create_future()
    server = asyncio.create_task(serve(settings, on_ready=ready.set_result))
    running = await asyncio.wait_for(ready, 20)
    try:
        assert running.url.startswith("https://127.0.0.1:")
        published = json.loads(settings.layout.server_file.read_text())
        assert published["url"] == running.url
        trust = ssl.create_default_context(cafile=str(cert))
        async with httpx.AsyncClient(verify=trust) as client:
            r = await client.get(
                f"{running.url}/v1/tasks", headers={"Authorization": f"Bearer {running.token}"}
            )
            assert r.status_code == 200
    finally:
        running.server.should_exit = True
        await asyncio.wait_for(server, 20)


async def test_half_a_tls_configuration_is_refused(tmp_path: Path) -> None:
    cert, _ = self_signed(tmp_path)
    with pytest.raises(HatobaError, match="both HATOBA_TLS_CERT and HATOBA_TLS_KEY"):
        await serve(Settings(home=tmp_path / "home", port=0, tls_cert=cert))
