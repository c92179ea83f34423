"""The in-memory FakeDriver used by controller tests behaves like a driver."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hatoba.drivers.fake import FakeDriver
from hatoba.drivers.protocol import ContainerSpec, ExecSpec, StartError
from hatoba.logs.records import decode


def spec(tmp_path: Path, name: str = "web") -> ContainerSpec:
    return ContainerSpec(
        task_id="t1",
        name=name,
        argv=["serve"],
        env={},
        state_dir=tmp_path / "state",
        log_path=tmp_path / "log",
    )


async def test_exit_codes_chosen_by_the_test(tmp_path: Path) -> None:
    driver = FakeDriver()
    handle = await driver.start(spec(tmp_path))
    assert driver.is_running(handle)
    waiter = asyncio.create_task(driver.wait(handle))
    await asyncio.sleep(0)
    assert not waiter.done()
    driver.exit(handle, 3)
    assert (await waiter).exit_code == 3
    assert not driver.is_running(handle)
    assert (await driver.wait(handle)).exit_code == 3


async def test_stop_exits_143_or_137_after_the_timeout(tmp_path: Path) -> None:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    driver = FakeDriver(sleep=fake_sleep)
    polite = await driver.start(spec(tmp_path, "polite"))
    await driver.stop(polite, "SIGTERM", 30)
    assert (await driver.wait(polite)).exit_code == 143
    stubborn = await driver.start(spec(tmp_path, "stubborn"))
    driver.container(stubborn).ignore_stop = True
    await driver.stop(stubborn, "SIGTERM", 30)
    status = await driver.wait(stubborn)
    assert (status.exit_code, status.signal, slept) == (137, 9, [30])
    assert driver.container(stubborn).stop_signals == ["SIGTERM"]


async def test_start_failures_recover_and_logs(tmp_path: Path) -> None:
    driver = FakeDriver()
    driver.fail_start("bad", 'CannotStartContainerError: exec: "x": not found')
    with pytest.raises(StartError, match="not found"):
        await driver.start(spec(tmp_path, "bad"))
    handle = await driver.start(spec(tmp_path))
    driver.write_log(handle, b"hello")
    records, _ = decode((tmp_path / "log").read_bytes())
    assert [r.data for r in records] == [b"hello"]
    assert await driver.recover(handle)
    driver.forget()
    assert not await driver.recover(handle)


async def test_exec_replays_scripted_results(tmp_path: Path) -> None:
    driver = FakeDriver()
    handle = await driver.start(spec(tmp_path))
    driver.exec_results[("check",)] = (1, b"unhealthy\n")
    proc = await driver.exec_process(handle, spec(tmp_path), ExecSpec(["check"]))
    assert await proc.read_output() == (1, b"unhealthy\n")
    assert await proc.read_output() is None
    assert await proc.wait() == 1
