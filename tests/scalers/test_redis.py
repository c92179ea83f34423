"""Redis-backed sources against the real Redis, with jobs pushed by real clients: redis-py,
Sidekiq's payload format, the ``rq`` library and a Celery app."""

from __future__ import annotations

import asyncio
import json
import secrets
import time

import pytest
import redis
from celery import Celery  # type: ignore[import-untyped]
from rq import Queue

from hatoba.scalers import MetricError
from tests.scalers.conftest import Opener
from tests.scalers.jobs import add


async def test_redis_list_length(redis_url: str, rdb: redis.Redis, name: str, opened: Opener):
    source = opened({"redisList": {"url": redis_url, "key": name}})
    assert (await source.read()).value == 0  # a missing key is an empty list
    rdb.lpush(name, *[f"job{i}" for i in range(7)])
    reading = await source.read()
    assert reading.value == 7 and reading.detail == {"size": 7}
    rdb.rpop(name, 3)
    assert (await source.read()).value == 4


async def test_redis_list_wrong_type_is_an_error(redis_url, rdb, name, opened: Opener):
    rdb.set(name, "not a list")
    source = opened({"redisList": {"url": redis_url, "key": name}})
    with pytest.raises(MetricError, match=f"LLEN {name} failed: WRONGTYPE"):
        await source.read()


async def test_unreachable_redis_is_an_error(name: str, opened: Opener) -> None:
    source = opened({"redisList": {"url": "redis://127.0.0.1:1/0", "key": name}})
    with pytest.raises(
        MetricError, match=r"cannot connect to redis 127.0.0.1:1: connection refused"
    ):
        await source.read()


async def test_password_is_never_in_messages(name: str, opened: Opener) -> None:
    source = opened({"redisList": {"url": "redis://:s3cr3t-pw@127.0.0.1:1/0", "key": name}})
    with pytest.raises(MetricError) as info:
        await source.read()
    assert "s3cr3t-pw" not in str(info.value)


async def test_stream_pending_and_lag(redis_url, rdb: redis.Redis, name, opened: Opener):
    stream, group = f"{name}:events", "workers"
    pending = opened({"redisStream": {"url": redis_url, "stream": stream, "group": group}})
    lag = opened(
        {"redisStream": {"url": redis_url, "stream": stream, "group": group, "metric": "lag"}}
    )
    missing = await pending.read()  # no stream yet: nothing to do
    assert missing.value == 0 and missing.detail["exists"] == 0
    ids = [rdb.xadd(stream, {"n": i}) for i in range(10)]
    rdb.xgroup_create(stream, group, id="0")
    rdb.xreadgroup(group, "c1", {stream: ">"}, count=4)
    rdb.xack(stream, group, ids[0])
    assert (await pending.read()).value == 3  # delivered 4, acked 1
    reading = await lag.read()
    assert reading.value == 6 and reading.detail == {"pending": 3, "lag": 6, "exists": 1}
    # a deleted entry after last-delivered-id: Redis reports no lag; it is counted instead
    rdb.xdel(stream, ids[7])
    assert rdb.xinfo_groups(stream)[0]["lag"] is None
    assert (await lag.read()).value == 5


async def test_stream_missing_group_is_an_error(redis_url, rdb, name, opened: Opener):
    rdb.xadd(name, {"n": 1})
    rdb.xgroup_create(name, "other", id="0")
    source = opened({"redisStream": {"url": redis_url, "stream": name, "group": "workers"}})
    with pytest.raises(MetricError, match=r"has no consumer group 'workers' \(groups: other\)"):
        await source.read()


def sidekiq_push(rdb: redis.Redis, queue: str, enqueued_at: float | int, key: str = "") -> None:
    """What Sidekiq::Client#raw_push does: SADD queues, LPUSH queue:<name> the JSON job."""
    job = {
        "retry": True,
        "queue": queue,
        "class": "HardWorker",
        "args": [1, "two"],
        "jid": secrets.token_hex(12),
        "created_at": enqueued_at,
        "enqueued_at": enqueued_at,
    }
    pipe = rdb.pipeline()
    pipe.sadd(f"{key}queues", queue)
    pipe.lpush(f"{key}queue:{queue}", json.dumps(job))
    pipe.execute()


@pytest.mark.parametrize("version", ["sidekiq7-float-seconds", "sidekiq8-int-milliseconds"])
async def test_sidekiq_size_and_latency(version, redis_url, rdb, name, opened: Opener):
    def stamp(age: float) -> float | int:
        at = time.time() - age
        return at if version.startswith("sidekiq7") else int(at * 1000)

    size = opened({"sidekiq": {"url": redis_url, "queue": name}})
    latency = opened({"sidekiq": {"url": redis_url, "queue": name, "metric": "latency"}})
    empty = await latency.read()
    assert empty.value == 0 and empty.detail == {"size": 0, "latency": 0}
    sidekiq_push(rdb, name, stamp(30))  # the oldest job
    sidekiq_push(rdb, name, stamp(5))
    sidekiq_push(rdb, name, stamp(1))
    assert (await size.read()).value == 3
    reading = await latency.read()
    assert 29 <= reading.value <= 32, reading
    assert reading.detail["size"] == 3
    rdb.rpop(f"queue:{name}")  # a worker takes the oldest job
    assert 4 <= (await latency.read()).value <= 7


async def test_sidekiq_namespace(redis_url, rdb, name, opened: Opener):
    sidekiq_push(rdb, name, time.time(), key=f"{name}:")
    plain = opened({"sidekiq": {"url": redis_url, "queue": name}})
    spaced = opened({"sidekiq": {"url": redis_url, "queue": name, "namespace": name}})
    assert (await plain.read()).value == 0
    assert (await spaced.read()).value == 1


async def test_sidekiq_garbage_job_is_an_error(redis_url, rdb, name, opened: Opener):
    rdb.lpush(f"queue:{name}", "{not json")
    source = opened({"sidekiq": {"url": redis_url, "queue": name, "metric": "latency"}})
    with pytest.raises(MetricError, match=f"the oldest job in queue:{name} is not JSON"):
        await source.read()


async def test_rq_queue_size_and_latency(redis_url, rdb, name, opened: Opener):
    queue = Queue(name, connection=rdb)
    size = opened({"rq": {"url": redis_url, "queue": name}})
    latency = opened({"rq": {"url": redis_url, "queue": name, "metric": "latency"}})
    try:
        assert (await size.read()).value == 0
        for i in range(5):
            queue.enqueue(add, i, 1)
        assert queue.count == 5
        assert (await size.read()).value == 5
        await asyncio.sleep(0.3)
        reading = await latency.read()
        assert 0.3 <= reading.value < 5 and reading.detail["size"] == 5
    finally:
        queue.delete(delete_jobs=True)


def _celery(broker: str) -> Celery:
    app = Celery("hatoba-scaler-test", broker=broker, set_as_current=False)
    app.conf.broker_connection_retry_on_startup = False
    app.conf.broker_connection_max_retries = 1
    return app


async def test_celery_on_redis(redis_url, rdb, name, opened: Opener):
    app = _celery(redis_url)
    try:
        for i in range(4):
            app.send_task("tests.scalers.jobs.add", args=(i, 1), queue=name)
        app.send_task("tests.scalers.jobs.add", args=(9, 9), queue=name, priority=5)
    finally:
        app.close()
    source = opened({"celery": {"brokerUrl": redis_url, "queue": name}})
    reading = await source.read()
    assert reading.value == 5, reading
    assert sum(v for k, v in reading.detail.items() if k.startswith("priority")) == 1
