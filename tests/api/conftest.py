from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack

import httpx
import pytest
from fastapi import FastAPI

from hatoba.api.app import create_app
from hatoba.api.services import ApiServices
from tests.integration.conftest import cp  # noqa: F401 - the real control plane fixture

ClientFor = Callable[[str | None], httpx.AsyncClient]


@pytest.fixture
def app(cp: ApiServices) -> FastAPI:  # noqa: F811
    return create_app(cp)


@pytest.fixture
async def client_for(app: FastAPI) -> AsyncIterator[ClientFor]:
    """A client that presents ``token`` (None: no Authorization header)."""
    async with AsyncExitStack() as stack:

        def make(token: str | None) -> httpx.AsyncClient:
            headers = {} if token is None else {"Authorization": f"Bearer {token}"}
            client = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://hatoba", headers=headers
            )
            stack.push_async_callback(client.aclose)
            return client

        yield make


@pytest.fixture
def root(cp: ApiServices, client_for: ClientFor) -> httpx.AsyncClient:  # noqa: F811
    return client_for(cp.token)


async def new_token(root: httpx.AsyncClient, name: str, role: str, **extra: object) -> str:
    r = await root.post("/v1/tokens", json={"name": name, "role": role, **extra})
    assert r.status_code == 201, r.text
    secret: str = r.json()["secret"]
    return secret
