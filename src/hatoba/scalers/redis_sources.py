"""Redis-backed backlogs: a plain list, a stream's consumer group, and the Redis layouts of
Sidekiq, RQ and Celery's Redis transport. One ``redis.asyncio.Redis`` per source.

A missing key is an empty queue (Redis itself treats it so: ``LLEN`` of nothing is 0).
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from hatoba.scalers.base import Connected, MetricError, MetricReading, Now, ResultError, utcnow

# Celery's Redis transport keeps priorities 1..9 in extra lists named queue + SEP + digit
# (kombu.transport.redis: PRIORITY_STEPS, SEP = "\x06\x16"); priority 0 is the bare name.
CELERY_PRIORITY_SEP = "\x06\x16"
CELERY_PRIORITIES = range(1, 10)
# A stream group whose lag Redis cannot tell is counted entry by entry, up to this many.
STREAM_COUNT_CAP = 10_000
_PAGE = 1000
# Sidekiq < 8 writes enqueued_at as float epoch seconds, Sidekiq 8 as integer milliseconds.
# Telling them apart by size also accepts clients that write integer seconds.
_MS_THRESHOLD = 1e11


class RedisSource(Connected["Redis"]):
    def __init__(
        self,
        url: str,
        *,
        target: str,
        timeout: float = 5.0,
        secret: str | None = None,
        now: Now = utcnow,
    ) -> None:
        super().__init__(target, secret=secret, now=now)
        self._url = url
        self._timeout = timeout

    async def _connect(self) -> Redis:
        client = Redis.from_url(
            self._url,
            socket_connect_timeout=self._timeout,
            socket_timeout=self._timeout,
            decode_responses=True,
            retry_on_timeout=False,
        )
        try:
            await client.ping()  # from_url alone does not connect: fail here, clearly
        except BaseException:
            await client.aclose()
            raise
        return client

    async def _disconnect(self, client: Redis) -> None:
        await client.aclose()


class RedisListSource(RedisSource):
    kind = "redisList"

    def __init__(self, url: str, key: str, **kw: Any) -> None:
        super().__init__(url, **kw)
        self.key = key

    async def _measure(self, client: Redis) -> MetricReading:
        size = await _llen(client, self.key)
        return self.reading(size, size=size)


class RedisStreamSource(RedisSource):
    """``pending``: delivered to the group but not acknowledged (XPENDING's count).
    ``lag``: not yet delivered to the group: XINFO GROUPS ``lag``. Redis reports no lag
    when entries were deleted after the group's last-delivered-id (entries-added minus
    entries-read would then count the deleted ones too), so the entries after
    last-delivered-id are counted, up to ``STREAM_COUNT_CAP``; past that the entries-read
    difference (an upper bound) is used when known.
    A missing stream reads 0; a missing group is an error (it is configuration)."""

    kind = "redisStream"

    def __init__(self, url: str, stream: str, group: str, metric: str, **kw: Any) -> None:
        super().__init__(url, **kw)
        self.stream, self.group, self.metric = stream, group, metric

    async def _measure(self, client: Redis) -> MetricReading:
        try:
            groups: list[dict[str, Any]] = await client.xinfo_groups(self.stream)
        except ResponseError as exc:
            if "no such key" in str(exc).lower():
                return self.reading(0, pending=0, lag=0, exists=0)
            raise ResultError(f"XINFO GROUPS {self.stream} failed: {exc}") from exc
        info = next((g for g in groups if g.get("name") == self.group), None)
        if info is None:
            names = ", ".join(str(g.get("name")) for g in groups) or "none"
            raise ResultError(
                f"stream {self.stream!r} has no consumer group {self.group!r} "
                f"(groups: {names}); workers create it with XGROUP CREATE ... MKSTREAM"
            )
        pending = int(info.get("pending") or 0)
        lag = await self._lag(client, info)
        value = pending if self.metric == "pending" else lag
        return self.reading(value, pending=pending, lag=lag, exists=1)

    async def _lag(self, client: Redis, info: dict[str, Any]) -> int:
        if info.get("lag") is not None:
            return int(info["lag"])
        start = f"({info.get('last-delivered-id') or '0-0'}"
        count = 0
        while count < STREAM_COUNT_CAP:
            page = await client.xrange(self.stream, min=start, max="+", count=_PAGE) or []
            count += len(page)
            if len(page) < _PAGE:
                break
            start = f"({page[-1][0]!s}"
        if count >= STREAM_COUNT_CAP and info.get("entries-read") is not None:
            stream = await client.xinfo_stream(self.stream)
            added = stream.get("entries-added")
            if added is not None:
                return max(STREAM_COUNT_CAP, int(added) - int(info["entries-read"]))
        return min(count, STREAM_COUNT_CAP)


class SidekiqSource(RedisSource):
    """Sidekiq's layout: jobs are LPUSHed onto ``[namespace:]queue:<name>`` and taken from
    the right, so the oldest job is ``LINDEX queue:<name> -1``; latency is now minus its
    ``enqueued_at`` (0 when the queue is empty), as ``Sidekiq::Queue#latency`` computes it."""

    kind = "sidekiq"

    def __init__(
        self, url: str, queue: str, metric: str, namespace: str | None = None, **kw: Any
    ) -> None:
        super().__init__(url, **kw)
        self.queue, self.metric = queue, metric
        self.key = f"{namespace}:queue:{queue}" if namespace else f"queue:{queue}"

    async def _measure(self, client: Redis) -> MetricReading:
        async with client.pipeline(transaction=False) as pipe:
            pipe.llen(self.key)
            pipe.lindex(self.key, -1)
            size, oldest = await pipe.execute()
        latency = 0.0
        if oldest is not None:
            enqueued = _json_field(oldest, "enqueued_at", f"the oldest job in {self.key}")
            if enqueued is not None:
                latency = _age(_epoch_seconds(enqueued, self.key))
        value = size if self.metric == "size" else latency
        return self.reading(value, size=size, latency=latency)


class RqSource(RedisSource):
    """RQ's layout: job ids are RPUSHed onto ``rq:queue:<name>`` and popped from the left;
    the oldest job's hash ``rq:job:<id>`` holds ``enqueued_at`` (ISO 8601, UTC)."""

    kind = "rq"

    def __init__(self, url: str, queue: str, metric: str, **kw: Any) -> None:
        super().__init__(url, **kw)
        self.queue, self.metric = queue, metric
        self.key = f"rq:queue:{queue}"

    async def _measure(self, client: Redis) -> MetricReading:
        async with client.pipeline(transaction=False) as pipe:
            pipe.llen(self.key)
            pipe.lindex(self.key, 0)
            size, oldest = await pipe.execute()
        latency = 0.0
        if oldest is not None and self.metric == "latency":
            stamp = await client.hget(f"rq:job:{oldest}", "enqueued_at")
            if stamp:  # a job whose hash expired or was deleted has no age to tell
                try:
                    latency = _age(datetime.fromisoformat(str(stamp)).timestamp())
                except ValueError as exc:
                    raise ResultError(f"rq:job:{oldest} enqueued_at {stamp!r}: {exc}") from exc
        value = size if self.metric == "size" else latency
        return self.reading(value, size=size, latency=latency)


class CeleryRedisSource(RedisSource):
    """Celery on a Redis broker: the queue name is the list key, and priorities 1..9 (when
    used) live in ``<queue>\\x06\\x16<n>`` lists; the backlog is the sum."""

    kind = "celery"

    def __init__(self, url: str, queue: str, **kw: Any) -> None:
        super().__init__(url, **kw)
        self.queue = queue
        self.keys = [queue] + [f"{queue}{CELERY_PRIORITY_SEP}{p}" for p in CELERY_PRIORITIES]

    async def _measure(self, client: Redis) -> MetricReading:
        async with client.pipeline(transaction=False) as pipe:
            for key in self.keys:
                pipe.llen(key)
            sizes = [int(n) for n in await pipe.execute()]
        detail = {"size": float(sum(sizes))}
        detail.update({f"priority{p}": float(n) for p, n in enumerate(sizes) if n and p > 0})
        return self.reading(sum(sizes), **detail)


async def _llen(client: Redis, key: str) -> int:
    try:
        return int(await client.llen(key))
    except ResponseError as exc:  # WRONGTYPE: the key holds something other than a list
        raise ResultError(f"LLEN {key} failed: {exc}") from exc


def _json_field(payload: str, name: str, what: str) -> Any:
    try:
        job = json.loads(payload)
    except ValueError as exc:
        raise ResultError(f"{what} is not JSON: {exc}") from exc
    if not isinstance(job, dict):
        raise ResultError(f"{what} is not a JSON object")
    return job.get(name)


def _epoch_seconds(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ResultError(f"the oldest job in {key} has enqueued_at {value!r}, not a number")
    return value / 1000.0 if value > _MS_THRESHOLD else float(value)


def _age(epoch_seconds: float) -> float:
    """Seconds since ``epoch_seconds`` by the wall clock (jobs are stamped by real clocks,
    so this never uses the injected clock that stamps readings)."""
    return max(0.0, time.time() - epoch_seconds)


__all__ = [
    "CeleryRedisSource",
    "MetricError",
    "RedisListSource",
    "RedisStreamSource",
    "RqSource",
    "SidekiqSource",
]
