"""RabbitMQ queue depth (also Celery on an AMQP broker).

Over AMQP: a passive ``queue.declare`` answers ``message_count`` (messages ready for
delivery) and ``consumer_count`` without creating or changing anything, and needs no plugin.
Over the management API (``http(s)://host:15672``): ``/api/queues/<vhost>/<queue>`` also
tells unacknowledged messages, so ``messages`` = ready + unacknowledged.
A queue that does not exist is an error (a typo must not read as an empty queue).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import aio_pika
import httpx
from aio_pika.abc import AbstractChannel, AbstractConnection
from aio_pika.exceptions import ChannelClosed, ChannelNotFoundEntity

from hatoba.scalers.base import Connected, MetricReading, ResultError, as_number


def amqp_url(url: str) -> str:
    """Celery/kombu spellings to plain AMQP: ``pyamqp://`` -> ``amqp://``."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower().split("+", 1)[0]
    if scheme == "pyamqp":
        scheme = "amqp"
    return urlunsplit(parts._replace(scheme=scheme))


class AmqpQueueSource(Connected[AbstractConnection]):
    """One AMQP connection per source; one channel on it, reopened after the broker closes
    it (which is what a passive declare of a missing queue does)."""

    def __init__(self, url: str, queue: str, *, kind: str, timeout: float = 5.0, **kw: Any):
        parts = urlsplit(url)
        vhost = parts.path[1:] or "/"
        super().__init__(f"AMQP {parts.hostname}:{parts.port or 5672}", **kw)
        self.kind = kind
        self.queue = queue
        self.vhost = vhost
        self._url = amqp_url(url)
        self._timeout = timeout
        self._channel: AbstractChannel | None = None

    async def _connect(self) -> AbstractConnection:
        # a plain connection: reconnecting is this class's business (on the next read)
        connection = await aio_pika.connect(self._url, timeout=self._timeout)
        self._channel = None
        return connection

    async def _disconnect(self, client: AbstractConnection) -> None:
        self._channel = None
        await client.close()

    async def _measure(self, client: AbstractConnection) -> MetricReading:
        if self._channel is None or self._channel.is_closed:
            self._channel = await client.channel(publisher_confirms=False)
        try:
            queue = await self._channel.declare_queue(self.queue, passive=True)
        except ChannelNotFoundEntity as exc:
            self._channel = None
            raise ResultError(
                f"queue {self.queue!r} does not exist on vhost {self.vhost!r} of {self.target}"
            ) from exc
        except ChannelClosed as exc:
            self._channel = None
            raise ResultError(f"queue {self.queue!r}: the broker refused: {exc}") from exc
        ok = queue.declaration_result
        ready = int(ok.message_count or 0)
        consumers = int(ok.consumer_count or 0)
        return self.reading(ready, messagesReady=ready, consumers=consumers)


class RabbitMqManagementSource(Connected[httpx.AsyncClient]):
    """Queue depth from the RabbitMQ management API (basic auth from the URL)."""

    kind = "rabbitmq"

    def __init__(
        self, url: str, queue: str, metric: str, vhost: str, *, timeout: float = 5.0, **kw: Any
    ) -> None:
        parts = urlsplit(url)
        super().__init__(f"RabbitMQ management API {parts.hostname}:{parts.port}", **kw)
        host = parts.netloc.rpartition("@")[2]
        base = urlunsplit(parts._replace(netloc=host)).rstrip("/")
        user, password = unquote(parts.username or "guest"), unquote(parts.password or "guest")
        self._auth = httpx.BasicAuth(user, password)
        self._endpoint = f"{base}/api/queues/{quote(vhost, safe='')}/{quote(queue, safe='')}"
        self.queue, self.metric, self.vhost = queue, metric, vhost
        self._timeout = timeout

    async def _connect(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=self._timeout, auth=self._auth)

    async def _disconnect(self, client: httpx.AsyncClient) -> None:
        await client.aclose()

    async def _measure(self, client: httpx.AsyncClient) -> MetricReading:
        response = await client.get(self._endpoint)
        if response.status_code == 404:
            raise ResultError(f"queue {self.queue!r} does not exist on vhost {self.vhost!r}")
        if response.status_code >= 400:
            raise ResultError(f"HTTP {response.status_code} from {self.target}")
        try:
            body = response.json()
        except ValueError as exc:
            raise ResultError(f"{self.target} answered non-JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise ResultError(f"{self.target} answered {type(body).__name__}, not an object")
        ready = as_number(body.get("messages_ready"), "messages_ready")
        unacked = as_number(body.get("messages_unacknowledged", 0), "messages_unacknowledged")
        messages = as_number(body.get("messages", ready + unacked), "messages")
        consumers = as_number(body.get("consumers", 0), "consumers")
        value = messages if self.metric == "messages" else ready
        return self.reading(
            value,
            messages=messages,
            messagesReady=ready,
            messagesUnacknowledged=unacked,
            consumers=consumers,
        )
