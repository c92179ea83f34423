"""The parameter store over the REST API, and the leak test: a secret value never shows up
in any response, error or log line unless decryption was asked for and allowed."""

from __future__ import annotations

import json
import logging
import secrets

import httpx
import pytest

from hatoba.api.services import ApiServices
from hatoba.model.task import LastStatus
from hatoba.secrets.crypto import parse_envelope
from hatoba.secrets.keyring import Keyring
from tests.api.conftest import ClientFor, new_token


async def put(
    client: httpx.AsyncClient, name: str, value: str, type_: str = "SecureString", **kw: object
) -> httpx.Response:
    return await client.put(f"/v1/parameters{name}", json={"type": type_, "value": value, **kw})


async def test_put_get_versions_labels_and_paths(root: httpx.AsyncClient) -> None:
    r = await put(root, "/prod/db/password", "pw-one", description="db")
    assert r.status_code == 200, r.text
    view = r.json()
    assert view["version"] == 1 and view["redacted"] is True and view["value"] is None
    assert (await put(root, "/prod/db/password", "pw-two")).status_code == 409
    assert (await put(root, "/prod/db/password", "pw-two", overwrite=True)).json()["version"] == 2
    await put(root, "/prod/db/host", "db.local", "String")
    await put(root, "/prod/app/deep/x", "a,b", "StringList")

    got = (await root.get("/v1/parameters/prod/db/password")).json()
    assert got["version"] == 2 and got["redacted"] and got["value"] is None
    dec = await root.get("/v1/parameters/prod/db/password", params={"withDecryption": "true"})
    assert dec.json()["value"] == "pw-two" and dec.json()["redacted"] is False
    v1 = {"withDecryption": "true", "version": "1"}
    assert (await root.get("/v1/parameters/prod/db/password", params=v1)).json()[
        "value"
    ] == "pw-one"
    r = await root.get("/v1/parameters/prod/db/password:1", params={"withDecryption": "true"})
    assert r.json()["value"] == "pw-one"
    assert (await root.get("/v1/parameters/prod/db/host")).json()["value"] == "db.local"

    r = await root.post(
        "/v1/parameter-labels/prod/db/password", json={"version": 1, "labels": ["stable"]}
    )
    assert r.status_code == 200 and r.json()["labels"] == ["stable"]
    r = await root.get(
        "/v1/parameters/prod/db/password", params={"label": "stable", "withDecryption": "true"}
    )
    assert r.json()["value"] == "pw-one"
    assert (await root.get("/v1/parameters/prod/db/password:nolabel")).status_code == 404

    history = (await root.get("/v1/parameter-history/prod/db/password")).json()["parameters"]
    assert [p["version"] for p in history] == [1, 2] and all(p["redacted"] for p in history)

    everything = (await root.get("/v1/parameters", params={"path": "/prod"})).json()["parameters"]
    assert [p["name"] for p in everything] == [
        "/prod/app/deep/x",
        "/prod/db/host",
        "/prod/db/password",
    ]
    flat = await root.get("/v1/parameters", params={"path": "/prod/db", "recursive": "false"})
    assert {p["name"] for p in flat.json()["parameters"]} == {"/prod/db/host", "/prod/db/password"}

    assert (await root.delete("/v1/parameters/prod/db/password")).json() == {"deletedVersions": 2}
    assert (await root.get("/v1/parameters/prod/db/password")).status_code == 404
    assert (await root.delete("/v1/parameters/prod/db/password")).status_code == 404


async def test_bad_input_names_the_field(root: httpx.AsyncClient) -> None:
    r = await put(root, "/aws/x", "v", "Bogus")
    assert r.status_code == 422
    paths = {e["path"] for e in r.json()["error"]["errors"]}
    assert paths == {"type"}
    r = await put(root, "/ok", "v", labels=["1bad"])
    assert {e["path"] for e in r.json()["error"]["errors"]} == {"labels[0]"}
    r = await root.get("/v1/parameters/x", params={"version": "1", "label": "a"})
    assert r.status_code == 422


async def test_decryption_needs_can_decrypt_and_scopes_limit_reach(
    root: httpx.AsyncClient, client_for: ClientFor
) -> None:
    await put(root, "/batch/key", "batch-secret")
    await put(root, "/prod/key", "prod-secret")
    viewer = client_for(await new_token(root, "v", "viewer"))
    r = await viewer.get("/v1/parameters/batch/key", params={"withDecryption": "true"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "Forbidden"
    assert "canDecrypt" in r.json()["error"]["message"]
    assert (await viewer.get("/v1/parameters/batch/key")).json()["redacted"] is True
    reader = client_for(await new_token(root, "r", "viewer", canDecrypt=True))
    r = await reader.get("/v1/parameters/batch/key", params={"withDecryption": "true"})
    assert r.json()["value"] == "batch-secret"

    scoped = client_for(await new_token(root, "b", "deployer", scopes=["param:/batch/*"]))
    assert (await put(scoped, "/batch/other", "x")).status_code == 200
    r = await put(scoped, "/prod/other", "x")
    assert r.status_code == 403 and "param:/prod/other" in r.text
    assert (await scoped.get("/v1/parameters/prod/key")).status_code == 403
    listed = (await scoped.get("/v1/parameters", params={"path": "/"})).json()["parameters"]
    assert {p["name"] for p in listed} == {"/batch/key", "/batch/other"}
    assert (await scoped.delete("/v1/parameters/prod/key")).status_code == 403
    assert (await root.get("/v1/parameters/prod/key")).status_code == 200


async def test_key_rotation_keeps_every_value(cp: ApiServices, root: httpx.AsyncClient) -> None:
    values = {f"/rot/p{i}": f"value-{i}" for i in range(5)}
    for name, value in values.items():
        await put(root, name, value)
    await put(root, "/rot/p0", "value-0b", overwrite=True)
    values["/rot/p0"] = "value-0b"
    before = Keyring.from_json(cp.layout.keyring_file.read_text(), "test")

    r = await root.post("/v1/keyring/rotate")
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["reencrypted"] == 6 and out["retiredKeyIds"] == [before.active_id]
    after = Keyring.from_json(cp.layout.keyring_file.read_text(), "test")
    assert after.key_ids == (out["activeKeyId"],) != before.key_ids
    for p in await cp.store.secure_parameter_versions():
        assert p.ciphertext is not None
        assert parse_envelope(p.ciphertext).key_id == out["activeKeyId"]
    for name, value in values.items():
        r = await root.get(f"/v1/parameters{name}", params={"withDecryption": "true"})
        assert r.json()["value"] == value
    r = await root.get("/v1/parameters/rot/p0:1", params={"withDecryption": "true"})
    assert r.json()["value"] == "value-0"


async def test_secret_value_leaks_nowhere(
    cp: ApiServices,
    root: httpx.AsyncClient,
    client_for: ClientFor,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = f"LEAK-{secrets.token_hex(8)}"
    seen: list[str] = []

    def saw(r: httpx.Response) -> httpx.Response:
        seen.append(f"{r.request.method} {r.request.url} {r.status_code}\n{r.text}")
        return r

    assert saw(await put(root, "/leak/pw", secret, description="db")).status_code == 200
    td = {
        "family": "leaky",
        "containerDefinitions": [
            {
                "name": "app",
                "command": ["sh", "-c", 'test "${#SECRET_PW}" -gt 8 && echo injected'],
                "secrets": [{"name": "SECRET_PW", "valueFrom": "/leak/pw"}],
            }
        ],
    }
    saw(await root.post("/v1/task-definitions", json=td))
    task = saw(await root.post("/v1/tasks", json={"taskDefinition": "leaky"})).json()["tasks"][0]
    done = await cp.tasks.wait_for(task["taskId"], LastStatus.STOPPED, 20)
    assert done.exit_code == 0, done.stopped_reason  # the secret was there

    viewer = client_for(await new_token(root, "viewer", "viewer"))
    tid = task["taskId"]
    for path in [
        "/v1/tasks",
        f"/v1/tasks/{tid}",
        f"/v1/tasks/{tid}/logs",
        f"/v1/tasks/{tid}/wait",
        "/v1/task-definitions",
        "/v1/task-definitions/leaky",
        "/v1/task-definitions/leaky/export",
        "/v1/parameters?path=/&recursive=true",
        "/v1/parameters/leak/pw",
        "/v1/parameter-history/leak/pw",
        "/v1/audit",
        "/v1/tokens",
        "/openapi.json",
    ]:
        assert saw(await root.get(path)).status_code == 200, path
    assert "injected" in seen[-11]  # the logs: the task ran with the secret, printed none
    errors = [
        await put(root, "/leak/pw", secret),  # exists, no overwrite
        await put(root, "/leak/pw", secret, "Bogus"),
        await put(root, "/aws/pw", secret),
        await put(root, "/leak/pw2", secret, labels=["9x"]),
        await root.put("/v1/parameters/leak/pw3", json={"type": "SecureString", "value": [secret]}),
        await root.put("/v1/parameters/leak/pw3", json={"value": secret, "bogus": secret}),
        await root.put(
            "/v1/parameters/leak/pw3", json={"type": "SecureString", "value": secret * 2000}
        ),
        await root.get("/v1/parameters/leak/pw:nolabel", params={"withDecryption": "true"}),
        await root.get("/v1/parameters/leak/pw:0"),
        await viewer.get("/v1/parameters/leak/pw", params={"withDecryption": "true"}),
        await viewer.get("/v1/parameter-history/leak/pw", params={"withDecryption": "true"}),
        await viewer.put("/v1/parameters/leak/pw", json={"type": "SecureString", "value": secret}),
        await client_for(None).put("/v1/parameters/leak/pw", json={"value": secret}),
    ]
    for r in errors:
        assert r.status_code >= 400, r.text
        saw(r)
    saw(await viewer.get("/v1/parameters", params={"withDecryption": "true"}))
    haystack = "\n".join(seen) + "\n" + caplog.text + json.dumps(await audit_rows(cp))
    assert secret not in haystack
    assert secret[5:] not in haystack

    # the control: with decryption and permission it does show, so the check can fail
    r = await root.get("/v1/parameters/leak/pw", params={"withDecryption": "true"})
    assert secret in r.text


async def audit_rows(cp: ApiServices) -> list[dict[str, object]]:
    return [e.model_dump(mode="json") for e in await cp.store.list_audit(limit=1000)]
