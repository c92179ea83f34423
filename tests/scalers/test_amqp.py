"""RabbitMQ depth over AMQP (passive declare) with messages published by aio-pika and by a
real Celery app; the management API form against a local stand-in (no plugin here)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aio_pika
import pytest
from celery import Celery  # type: ignore[import-untyped]

from hatoba.scalers import MetricError
from tests.scalers.conftest import Opener, Routes


@pytest.fixture
async def channel(amqp_url: str, name: str) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    """A channel for publishing; this test's queues (named after ``name``) are deleted."""
    connection = await aio_pika.connect(amqp_url, timeout=5)
    channel = await connection.channel()
    yield channel
    cleanup = await connection.channel()
    for queue in (name, f"{name}.celery"):
        await cleanup.queue_delete(queue)
    await connection.close()


async def publish(channel: aio_pika.abc.AbstractChannel, queue: str, count: int) -> None:
    for i in range(count):
        message = aio_pika.Message(body=f"job {i}".encode(), delivery_mode=2)
        await channel.default_exchange.publish(message, routing_key=queue)


async def test_rabbitmq_ready_messages_and_consumers(amqp_url, name, channel, opened: Opener):
    queue = await channel.declare_queue(name, durable=True)
    source = opened({"rabbitmq": {"url": amqp_url, "queue": name}})
    assert (await source.read()).value == 0
    await publish(channel, name, 6)
    reading = await source.read()
    assert reading.value == 6 and reading.detail == {"messagesReady": 6, "consumers": 0}
    # a consumer holding 2 unacknowledged messages: 4 are still ready
    worker = await aio_pika.connect(amqp_url, timeout=5)
    try:
        consumer = await worker.channel()
        await consumer.set_qos(prefetch_count=2)
        held: list[aio_pika.abc.AbstractIncomingMessage] = []

        async def hold(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            held.append(message)

        await (await consumer.get_queue(queue.name)).consume(hold)
        for _ in range(50):
            reading = await source.read()
            if reading.value == 4 and len(held) == 2:
                break
            await asyncio.sleep(0.02)
        assert reading.value == 4 and reading.detail["consumers"] == 1
    finally:
        await worker.close()


async def test_rabbitmq_missing_queue_is_an_error_then_recovers(
    amqp_url, name, channel, opened: Opener
):
    source = opened({"rabbitmq": {"url": amqp_url, "queue": name}})
    with pytest.raises(MetricError, match=f"queue '{name}' does not exist on vhost '/'"):
        await source.read()
    await channel.declare_queue(name)
    await publish(channel, name, 2)
    assert (await source.read()).value == 2  # a new channel on the same connection


async def test_rabbitmq_unreachable_and_bad_login(name, opened: Opener):
    refused = opened({"rabbitmq": {"url": "amqp://guest:guest@127.0.0.1:1//", "queue": name}})
    with pytest.raises(MetricError, match=r"cannot connect to AMQP 127\.0\.0\.1:1: connection"):
        await refused.read()


async def test_rabbitmq_bad_password_is_hidden(amqp_url, name, opened: Opener):
    url = amqp_url.replace("guest:guest@", "guest:n0t-the-pw@")
    source = opened({"rabbitmq": {"url": url, "queue": name}})
    with pytest.raises(MetricError, match="cannot connect to AMQP") as info:
        await source.read()
    assert "n0t-the-pw" not in str(info.value)


async def test_celery_on_rabbitmq(amqp_url, name, channel, opened: Opener):
    queue = f"{name}.celery"
    app = Celery("hatoba-scaler-test", broker=amqp_url, set_as_current=False)
    app.conf.broker_connection_retry_on_startup = False
    try:
        for i in range(3):  # Celery declares the (durable) queue and publishes to it
            app.send_task("tests.scalers.jobs.add", args=(i, 1), queue=queue)
    finally:
        app.close()
    source = opened({"celery": {"brokerUrl": amqp_url.replace("amqp", "pyamqp"), "queue": queue}})
    reading = await source.read()
    assert reading.value == 3 and reading.detail["consumers"] == 0


MANAGEMENT_QUEUE = {  # the shape of GET /api/queues/<vhost>/<name> (fields trimmed)
    "name": "jobs",
    "vhost": "/",
    "durable": True,
    "consumers": 2,
    "messages": 12,
    "messages_ready": 9,
    "messages_unacknowledged": 3,
    "state": "running",
}


@pytest.mark.parametrize(("metric", "value"), [("messages", 12), ("messagesReady", 9)])
async def test_rabbitmq_management_api(metric, value, http_server, opened: Opener):
    base, routes = http_server
    routes.json("/api/queues/%2F/jobs", MANAGEMENT_QUEUE)
    url = base.replace("http://", "http://monitor:pw@")
    source = opened({"rabbitmq": {"url": url, "queue": "jobs", "metric": metric}})
    reading = await source.read()
    assert reading.value == value
    assert reading.detail == {
        "messages": 12,
        "messagesReady": 9,
        "messagesUnacknowledged": 3,
        "consumers": 2,
    }
    assert routes.requests[-1][1]["Authorization"] == "Basic bW9uaXRvcjpwdw=="  # monitor:pw


async def test_rabbitmq_management_missing_queue(http_server: tuple[str, Routes], opened: Opener):
    base, _ = http_server
    source = opened({"rabbitmq": {"url": base, "queue": "nope", "vhost": "prod"}})
    with pytest.raises(MetricError, match="queue 'nope' does not exist on vhost 'prod'"):
        await source.read()
