"""Access control: every mutating route needs a token and a role, scoped tokens reach only
their resources, revoked/expired tokens are refused, and every mutation is audited."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import Message

from hatoba.api.audit import MUTATING
from hatoba.api.services import ApiServices
from tests.api.conftest import ClientFor, new_token


def container_td(family: str) -> dict[str, Any]:
    return {"family": family, "containerDefinitions": [{"name": "app", "command": ["true"]}]}


def mutating_routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, concrete path) of every mutating HTTP route, path parameters filled in.
    From the OpenAPI document (every HTTP route is in it), so new routes are covered."""
    out = []
    for template, ops in app.openapi()["paths"].items():
        path = template.replace("{name}", "batch/x")
        path = re.sub(r"\{[^}]+\}", "abcdef", path)
        out += [(m.upper(), path) for m in sorted(ops) if m.upper() in MUTATING]
    return out


async def snapshot(cp: ApiServices) -> Any:
    return (
        await cp.store.list_task_definitions(),
        await cp.store.list_tasks(),
        await cp.store.list_parameters("/", recursive=True),
        await cp.store.list_tokens(),
        cp.layout.keyring_file.read_text() if cp.layout.keyring_file.exists() else None,
    )


async def test_every_mutation_needs_a_token_and_a_role(
    cp: ApiServices, app: FastAPI, root: httpx.AsyncClient, client_for: ClientFor
) -> None:
    routes = mutating_routes(app)
    assert len(routes) >= 10, routes  # taskdefs 2, tasks 2, parameters 3, keyring, tokens 2
    await root.post("/v1/task-definitions", json=container_td("batch"))
    await root.put("/v1/parameters/batch/x", json={"type": "SecureString", "value": "s"})
    viewer = client_for(await new_token(root, "viewer", "viewer", canDecrypt=True))
    before = await snapshot(cp)
    for token, client, status in [
        (None, client_for(None), 401),
        ("junk", client_for("hbt_abc_def"), 401),
        ("viewer", viewer, 403),
    ]:
        for method, path in routes:
            r = await client.request(method, path, json={})
            assert r.status_code == status, (token, method, path, r.text)
            code = "Unauthorized" if status == 401 else "Forbidden"
            assert r.json()["error"]["code"] == code
            if status == 403:
                assert "role" in r.json()["error"]["message"]
    assert await snapshot(cp) == before


async def test_roles_and_family_scopes(root: httpx.AsyncClient, client_for: ClientFor) -> None:
    await root.post("/v1/task-definitions", json=container_td("web"))
    await root.post("/v1/task-definitions", json=container_td("batch-x"))
    operator = client_for(await new_token(root, "op", "operator"))
    assert (await operator.post("/v1/tasks", json={"taskDefinition": "web"})).status_code == 200
    r = await operator.post("/v1/task-definitions", json=container_td("other"))
    assert r.status_code == 403 and "deployer" in r.json()["error"]["message"]

    deployer = client_for(await new_token(root, "dep", "deployer"))
    assert (await deployer.post("/v1/task-definitions", json=container_td("d"))).status_code == 200
    r = await deployer.put("/v1/parameters/d/x", json={"type": "String", "value": "1"})
    assert r.status_code == 200
    r = await deployer.post("/v1/tokens", json={"name": "x", "role": "viewer"})
    assert r.status_code == 403 and "admin" in r.json()["error"]["message"]
    assert (await deployer.post("/v1/keyring/rotate")).status_code == 403

    scoped = client_for(await new_token(root, "batch", "deployer", scopes=["family:batch-*"]))
    r = await scoped.post("/v1/tasks", json={"taskDefinition": "batch-x"})
    assert r.status_code == 200, r.text
    r = await scoped.post("/v1/tasks", json={"taskDefinition": "web"})
    assert r.status_code == 403 and "family:web" in r.json()["error"]["message"]
    assert (await scoped.delete("/v1/task-definitions/web:1")).status_code == 403
    assert (await scoped.post("/v1/task-definitions", json=container_td("web"))).status_code == 403
    web_task = (await root.post("/v1/tasks", json={"taskDefinition": "web"})).json()["tasks"][0]
    assert (await scoped.post(f"/v1/tasks/{web_task['taskId']}/stop", json={})).status_code == 403
    assert (await scoped.get("/v1/tasks")).status_code == 200  # reads are not scoped


async def test_revoked_and_expired_tokens_are_refused(
    root: httpx.AsyncClient, client_for: ClientFor
) -> None:
    created = (await root.post("/v1/tokens", json={"name": "r", "role": "admin"})).json()
    assert "secretHash" not in created["token"]
    client = client_for(created["secret"])
    assert (await client.get("/v1/tasks")).status_code == 200
    listed = (await root.get("/v1/tokens")).json()["tokens"]
    assert [t["name"] for t in listed] == ["r"] and "secretHash" not in listed[0]
    r = await root.delete(f"/v1/tokens/{created['token']['tokenId']}")
    assert r.status_code == 200 and r.json()["revokedAt"]
    assert (await client.get("/v1/tasks")).status_code == 401
    assert (await root.delete("/v1/tokens/nope")).status_code == 404

    short = client_for(await new_token(root, "short", "admin", expiresInHours=0.000005))
    await asyncio.sleep(0.05)
    assert (await short.get("/v1/tasks")).status_code == 401
    tampered = created["secret"][:-2] + "xx"
    assert (await client_for(tampered).get("/v1/tasks")).status_code == 401
    r = await root.post("/v1/tokens", json={"name": "s", "role": "viewer", "scopes": ["nope"]})
    assert r.status_code == 422 and r.json()["error"]["errors"][0]["path"] == "scopes[0]"


async def test_mutations_allowed_and_refused_are_audited(
    cp: ApiServices, root: httpx.AsyncClient, client_for: ClientFor
) -> None:
    viewer_secret = await new_token(root, "auditee", "viewer")
    await root.put("/v1/parameters/a/b", json={"type": "SecureString", "value": "hush"})
    await client_for(None).post("/v1/tasks", json={"taskDefinition": "x"})
    await client_for(viewer_secret).delete("/v1/parameters/a/b")
    await root.get("/v1/tasks")  # reads are not audited
    entries = (await root.get("/v1/audit")).json()["entries"]
    got = [(e["principal"], e["method"], e["path"], e["status"]) for e in entries]
    assert got == [
        ("auditee", "DELETE", "/v1/parameters/a/b", 403),
        ("anonymous", "POST", "/v1/tasks", 401),
        ("root", "PUT", "/v1/parameters/a/b", 200),
        ("root", "POST", "/v1/tokens", 201),
    ]
    assert all(e["client"] == "127.0.0.1" and e["at"] for e in entries)
    assert entries[0]["tokenId"] and entries[2].get("tokenId") is None
    assert "hush" not in json.dumps(entries)
    page = (await root.get("/v1/audit", params={"limit": 2, "beforeSeq": entries[1]["seq"]})).json()
    assert [e["seq"] for e in page["entries"]] == [entries[2]["seq"], entries[3]["seq"]]


async def test_audit_failure_does_not_fail_the_call(
    cp: ApiServices,
    root: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(entries: object) -> object:
        raise RuntimeError("disk full")

    monkeypatch.setattr(cp.store, "append_audits", broken)
    r = await root.put("/v1/parameters/a/b", json={"type": "String", "value": "1"})
    assert r.status_code == 200
    await cp.tokens.audit_writer.drain()
    assert "audit write failed; lost: PUT /v1/parameters/a/b by root -> 200" in caplog.text


async def exec_ws(app: FastAPI, token: str | None, ref: str = "abcdef") -> list[Message]:
    """Drive the exec websocket at the ASGI level; returns what the server sent."""
    headers = [] if token is None else [(b"authorization", f"Bearer {token}".encode())]
    scope = {
        "type": "websocket",
        "path": f"/v1/tasks/{ref}/exec",
        "raw_path": f"/v1/tasks/{ref}/exec".encode(),
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("hatoba", 80),
        "scheme": "ws",
        "root_path": "",
        "subprotocols": [],
        "asgi": {"version": "3.0"},
    }
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    await inbox.put({"type": "websocket.connect"})
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)
        if message["type"] == "websocket.close":
            await inbox.put({"type": "websocket.disconnect", "code": message.get("code")})

    await asyncio.wait_for(app(scope, inbox.get, send), 10)
    return sent


async def test_exec_websocket_checks_token_role_and_scope(
    cp: ApiServices, app: FastAPI, root: httpx.AsyncClient
) -> None:
    sent = await exec_ws(app, None)
    assert json.loads(sent[1]["text"])["error"]["code"] == "Unauthorized"
    assert sent[-1] == {**sent[-1], "type": "websocket.close", "code": 4401}
    sent = await exec_ws(app, await new_token(root, "v", "viewer"))
    assert json.loads(sent[1]["text"])["error"]["code"] == "Forbidden"
    assert sent[-1]["code"] == 4403
    await root.post("/v1/task-definitions", json=container_td("web"))
    task = (await root.post("/v1/tasks", json={"taskDefinition": "web"})).json()["tasks"][0]
    scoped = await new_token(root, "b", "operator", scopes=["family:batch-*"])
    sent = await exec_ws(app, scoped, task["taskId"])
    assert "family:web" in sent[1]["text"] and sent[-1]["code"] == 4403
    entries = (await root.get("/v1/audit")).json()["entries"]
    ws = [(e["principal"], e["status"]) for e in entries if e["method"] == "WEBSOCKET"]
    assert ws == [("b", 4403), ("v", 4403), ("anonymous", 4401)]


logging.getLogger("hatoba").setLevel(logging.DEBUG)
