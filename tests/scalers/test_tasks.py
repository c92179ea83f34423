"""CPU and memory per task, measured with psutil on real processes: a busy loop, a sleeper,
a process tree, a process holding memory."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator

import psutil
import pytest

from hatoba.scalers import (
    MetricError,
    ProcessTaskStats,
    TaskUsage,
    open_source,
    parse_metric_spec,
)

pytestmark = pytest.mark.timeout(30)

# each prints a line once started, so interpreter start-up is not measured as load
BUSY = "print('ready', flush=True)\nwhile True: pass"
SLEEP = "import time; print('ready', flush=True); time.sleep(60)"
HOLD_40_MIB = "import time; b = bytearray(40 * 2**20)\nprint('ready', flush=True)\ntime.sleep(60)"
TREE = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {BUSY!r}])"


@pytest.fixture
def spawn() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        for child in _children(p.pid):
            child.kill()
        p.kill()
        p.wait()


def _children(pid: int) -> list[psutil.Process]:
    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.NoSuchProcess:
        return []


def exited_pid() -> int:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    return gone.pid


def start(procs: list[subprocess.Popen[bytes]], code: str) -> int:
    """Start ``code`` in a new interpreter and wait for its first line."""
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    procs.append(proc)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"ready\n"
    return proc.pid


async def test_busy_and_sleeping_processes(spawn) -> None:
    busy, sleeping = start(spawn, BUSY), start(spawn, SLEEP)
    stats = ProcessTaskStats(lambda: [(busy, 1024, 256), (sleeping, 1024, 256)], first_window=0.3)
    first = await stats.usage()
    assert first[0].cpu_percent_of_reservation > 20, first
    assert first[1].cpu_percent_of_reservation < 10, first
    await asyncio.sleep(0.3)
    again = await stats.usage()  # measured since the previous call
    assert again[0].cpu_percent_of_reservation > 20 and again[1].cpu_percent_of_reservation < 10


async def test_cpu_is_relative_to_the_reservation(spawn) -> None:
    busy = start(spawn, BUSY)
    half_core = ProcessTaskStats(lambda: [(busy, 512, None)], first_window=0.3)
    one_core = ProcessTaskStats(lambda: [(busy, 1024, None)], first_window=0.3)
    (half,), (one,) = await asyncio.gather(half_core.usage(), one_core.usage())
    ratio = half.cpu_percent_of_reservation / one.cpu_percent_of_reservation
    assert 1.6 < ratio < 2.4, (half, one)  # the same load is twice as much of half a core


async def test_a_process_tree_counts_as_one_task(spawn) -> None:
    parent = start(spawn, TREE)  # the busy child prints "ready" through the parent's stdout
    stats = ProcessTaskStats(lambda: [(parent, 1024, None)], first_window=0.3)
    (usage,) = await stats.usage()
    assert usage.cpu_percent_of_reservation > 20


async def test_memory_percent_of_reservation(spawn) -> None:
    pid = start(spawn, HOLD_40_MIB)
    stats = ProcessTaskStats(lambda: [(pid, 1024, 80)], first_window=0.05)
    (usage,) = await stats.usage()
    assert 50 <= usage.memory_percent_of_reservation <= 80, usage  # 40 MiB + the interpreter


async def test_cpu_and_memory_sources_average_over_tasks(spawn) -> None:
    busy, sleeping = start(spawn, BUSY), start(spawn, SLEEP)
    tasks = [(busy, 1024, 512), (sleeping, 1024, 512), (exited_pid(), 1024, 512)]
    stats = ProcessTaskStats(lambda: tasks, first_window=0.3)
    cpu = open_source(parse_metric_spec({"cpu": {}}), task_stats=stats)
    reading = await cpu.read()
    assert reading.detail["tasks"] == 2  # the exited process is left out
    assert reading.detail["max"] > 20 and reading.detail["min"] < 10
    assert reading.value == pytest.approx((reading.detail["max"] + reading.detail["min"]) / 2)
    memory = open_source(parse_metric_spec({"memory": {}}), task_stats=stats)
    assert 0 < (await memory.read()).value < 20


class Fixed:
    def __init__(self, usage: list[TaskUsage] | Exception) -> None:
        self._usage = usage

    async def usage(self) -> list[TaskUsage]:
        if isinstance(self._usage, Exception):
            raise self._usage
        return self._usage


async def test_zero_tasks_read_zero_and_failures_are_errors() -> None:
    cpu = open_source(parse_metric_spec({"cpu": {}}), task_stats=Fixed([]))
    reading = await cpu.read()
    assert reading.value == 0 and reading.detail == {"tasks": 0}
    broken = open_source(parse_metric_spec({"memory": {}}), task_stats=Fixed(OSError("no /proc")))
    with pytest.raises(MetricError, match="task memory stats failed: OSError: no /proc"):
        await broken.read()
