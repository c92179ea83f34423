"""The Poller: keeps the last good reading through failures, counts failures in a row,
bounds each read by its timeout, reconnects, and never raises out of ``run``."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest
import redis

from hatoba.model.clock import FakeClock
from hatoba.scalers import (
    MetricError,
    MetricReading,
    Poller,
    open_poller,
    open_source,
    parse_metric_spec,
)


async def wait_for(condition, seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not true after {seconds}s")


async def test_keeps_last_good_reading_and_counts_errors(redis_url, rdb: redis.Redis, name):
    rdb.rpush(name, "a", "b", "c")
    spec = parse_metric_spec({"redisList": {"url": redis_url, "key": name}, "pollInterval": 0.02})
    updates: list[int] = []
    poller = open_poller(spec, on_update=lambda p: updates.append(p.polls))
    assert (poller.interval, poller.timeout) == (0.02, 5.0)
    task = asyncio.create_task(poller.run())
    try:
        await wait_for(lambda: poller.latest() is not None)
        good = poller.latest()
        assert good is not None and good.value == 3
        assert [poller.healthy, poller.error()] == [True, None]
        rdb.delete(name)
        rdb.set(name, "now a string")  # every read fails with WRONGTYPE from here on
        await wait_for(lambda: poller.consecutive_errors >= 3)
        assert poller.latest() == good  # not replaced by a guess
        error = poller.error()
        assert poller.healthy is (error is None) is False
        assert error is not None and error.startswith(f"redisList: LLEN {name} failed: WRONGTYPE")
        rdb.delete(name)
        rdb.rpush(name, "x")
        await wait_for(lambda: poller.error() is None)
        latest = poller.latest()
        assert latest is not None and latest.value == 1 and latest.at > good.at
        assert poller.consecutive_errors == 0 and poller.last_error == error
        assert updates == list(range(1, len(updates) + 1))  # called after every poll
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await poller.close()


async def test_unreachable_server_never_reads_zero() -> None:
    spec = parse_metric_spec({"redisList": {"url": "redis://127.0.0.1:1/0", "key": "k"}})
    poller = Poller(open_source(spec), interval=0.01)
    task = asyncio.create_task(poller.run())
    await wait_for(lambda: poller.consecutive_errors >= 2)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert poller.latest() is None
    assert "cannot connect to redis 127.0.0.1:1: connection refused" in (poller.error() or "")
    await poller.close()


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts TCP connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield server.getsockname()[1]
    server.close()


async def test_timeout_bounds_each_read(silent_server: int) -> None:
    url = f"http://127.0.0.1:{silent_server}/stats"
    spec = parse_metric_spec({"http": {"url": url, "jsonPath": "n"}, "timeout": 30})
    poller = Poller(open_source(spec), interval=1, timeout=0.2)
    assert await poller.poll_once() is None
    assert poller.error() == "http: timeout after 0.2s"
    assert await poller.poll_once() is None  # a fresh connection, timed out again
    assert poller.consecutive_errors == 2
    await poller.close()


class Flaky:
    """A source that fails on chosen calls, and once raises a bug (not a MetricError)."""

    kind = "flaky"

    def __init__(self) -> None:
        self.calls = 0

    async def read(self) -> MetricReading:
        self.calls += 1
        if self.calls == 2:
            raise MetricError("broker said no")
        if self.calls == 3:
            raise KeyError("a bug")
        return MetricReading(float(self.calls), FakeClock().now())

    async def close(self) -> None:
        return None


async def test_runs_on_an_injected_clock() -> None:
    clock = FakeClock()
    poller = Poller(Flaky(), interval=10, clock=clock)
    task = asyncio.create_task(poller.run())
    await wait_for(lambda: poller.polls == 1)
    assert poller.latest() is not None and poller.last_poll_at == clock.now()
    await clock.advance(10)
    await wait_for(lambda: poller.polls == 2)
    assert poller.error() == "flaky: broker said no"
    await clock.advance(10)
    await wait_for(lambda: poller.polls == 3)  # a bug in a source does not stop polling
    assert poller.error() == "flaky: unexpected KeyError: 'a bug'"
    await clock.advance(10)
    await wait_for(lambda: poller.polls == 4)
    reading = poller.latest()
    assert reading is not None and reading.value == 4 and poller.error() is None
    assert poller.polls == 4  # no poll without the clock moving
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def test_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="positive"):
        Poller(Flaky(), interval=0)
