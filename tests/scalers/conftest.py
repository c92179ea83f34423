"""Scaler fixtures: the real Redis, RabbitMQ, PostgreSQL and MariaDB on this machine.

Each is checked once with a plain TCP connect; when one is unreachable its tests skip with
the reason (set HATOBA_TEST_REQUIRE_SERVERS=1 to make that a failure instead). Addresses
can be moved with HATOBA_TEST_REDIS_URL, HATOBA_TEST_AMQP_URL, HATOBA_TEST_PG_URL and
HATOBA_TEST_MYSQL_URL. Every test names its keys, queues and tables with a random suffix
(the ``name`` fixture) and removes them.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis

from hatoba.scalers import MetricSource, open_source, parse_metric_spec

REDIS_URL = os.environ.get("HATOBA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_URL = os.environ.get("HATOBA_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
PG_URL = os.environ.get("HATOBA_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("HATOBA_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")


@cache
def _unreachable(url: str, default_port: int) -> str | None:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or default_port
    try:
        with socket.create_connection((host, port), timeout=1):
            return None
    except OSError as exc:
        return f"{host}:{port} unreachable ({exc})"


def _need(what: str, url: str, default_port: int) -> str:
    problem = _unreachable(url, default_port)
    if problem is not None:
        message = f"{what} at {problem}"
        if os.environ.get("HATOBA_TEST_REQUIRE_SERVERS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return url


@pytest.fixture
def redis_url() -> str:
    return _need("Redis", REDIS_URL, 6379)


@pytest.fixture
def amqp_url() -> str:
    return _need("RabbitMQ", AMQP_URL, 5672)


@pytest.fixture
def pg_url() -> str:
    return _need("PostgreSQL", PG_URL, 5432)


@pytest.fixture
def mysql_url() -> str:
    return _need("MariaDB/MySQL", MYSQL_URL, 3306)


Opener = Callable[[dict[str, Any]], MetricSource]


@pytest.fixture
async def opened() -> AsyncIterator[Opener]:
    """Opens sources from spec dicts and closes them all after the test."""
    sources: list[MetricSource] = []

    def open_(spec: dict[str, Any]) -> MetricSource:
        sources.append(open_source(parse_metric_spec(spec)))
        return sources[-1]

    yield open_
    for source in sources:
        await source.close()


@pytest.fixture
def name() -> str:
    """A fresh name for this test's keys, queues and tables (SQL-safe)."""
    return f"hatoba_test_{secrets.token_hex(5)}"


@pytest.fixture
def rdb(redis_url: str, name: str) -> Iterator[redis.Redis]:
    """A redis-py client; every key containing this test's ``name`` is deleted after."""
    client = redis.Redis.from_url(redis_url)
    yield client
    for key in client.scan_iter(match=f"*{name}*", count=1000):
        client.delete(key)
    client.srem("queues", name)
    client.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Routes:
    """What the local HTTP server answers: path (with query) -> (status, body, headers)."""

    def __init__(self) -> None:
        self.answers: dict[str, tuple[int, bytes, dict[str, str]]] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []

    def json(self, path: str, body: object, status: int = 200) -> None:
        self.answers[path] = (
            status,
            json.dumps(body).encode(),
            {"Content-Type": "application/json"},
        )

    def text(self, path: str, body: str, status: int = 200) -> None:
        self.answers[path] = (status, body.encode(), {"Content-Type": "text/plain"})


@pytest.fixture
def http_server() -> Iterator[tuple[str, Routes]]:
    """A real HTTP server on 127.0.0.1 (a thread): base URL and its routes."""
    routes = Routes()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            routes.requests.append((self.path, dict(self.headers.items())))
            status, body, headers = routes.answers.get(
                self.path, (404, b'{"error": "not found"}', {"Content-Type": "application/json"})
            )
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", routes
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
