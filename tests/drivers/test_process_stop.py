"""Stopping: the signal reaches the whole process group; SIGKILL after the timeout; OOM."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from hatoba.drivers.process import cgroups

from .conftest import Containers, eventually, lines


def group_alive(pgid: int) -> bool:
    """Any process left in the group, zombies included (the shim reaps its orphans)?"""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_stop_signals_the_whole_group(containers: Containers) -> None:
    _, handle = await containers.start(["sh", "-c", "sleep 100 & sleep 100; wait"])
    driver = containers.driver
    await eventually(lambda: len(group_pids(handle["pid"])) >= 3)
    assert driver.is_running(handle)
    await driver.stop(handle, "SIGTERM", 10)
    status = await driver.wait(handle)
    assert (status.exit_code, status.signal) == (143, signal.SIGTERM)
    assert not group_alive(handle["pid"])
    assert cgroups.pids(Path(d) for d in handle["cgroups"]) == set()
    await driver.stop(handle, "SIGTERM", 10)  # stopping again is harmless


def group_pids(pgid: int) -> set[int]:
    """Processes in a process group (from /proc)."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_bytes()
            except OSError:
                continue
            fields = stat[stat.rindex(b")") + 2 :].split()
            if int(fields[2]) == pgid:
                found.add(int(entry))
    return found


async def test_stop_timeout_escalates_to_sigkill(containers: Containers) -> None:
    spec, handle = await containers.start(["sh", "-c", "trap '' TERM; echo ready; sleep 100"])
    await eventually(
        lambda: spec.log_path.exists() and lines(spec.log_path, complete=False) == [b"ready"]
    )
    await containers.driver.stop(handle, "SIGTERM", 0.3)
    status = await containers.driver.wait(handle)
    assert (status.exit_code, status.signal) == (137, signal.SIGKILL)
    assert not group_alive(handle["pid"])


async def test_stop_after_exit_is_a_no_op(containers: Containers) -> None:
    _, handle = await containers.start(["true"])
    await containers.driver.wait(handle)
    await containers.driver.stop(handle, "SIGINT", 0)
    assert (await containers.driver.wait(handle)).exit_code == 0


async def test_stop_with_sigint_and_unknown_signal(containers: Containers) -> None:
    _, handle = await containers.start(["sleep", "100"])
    with pytest.raises(ValueError, match="unknown signal"):
        await containers.driver.stop(handle, "SIGNOPE", 1)
    await containers.driver.stop(handle, "SIGINT", 5)
    assert (await containers.driver.wait(handle)).exit_code == 130


@pytest.mark.skipif(
    cgroups.detect() is cgroups.CgroupVersion.NONE, reason="needs a writable cgroup hierarchy"
)
async def test_memory_limit_oom_kill_is_reported(containers: Containers) -> None:
    _, handle = await containers.start(
        ["python3", "-c", "b = b'x' * (200 * 1024 * 1024)"], memory=32, memory_reservation=16
    )
    dirs = [Path(d) for d in handle["cgroups"]]
    memory_dir = dirs[0]  # v1: [memory, cpu]; v2: the one unified directory
    if (memory_dir / "memory.limit_in_bytes").exists():
        assert (memory_dir / "memory.limit_in_bytes").read_text().strip() == str(32 << 20)
    status = await containers.driver.wait(handle)
    assert status.oom_killed
    assert status.exit_code == 137 and status.signal == signal.SIGKILL
    assert status.reason == "OutOfMemoryError: Container killed due to memory usage"


@pytest.mark.skipif(
    cgroups.detect() is not cgroups.CgroupVersion.V1, reason="checks cgroup v1 files"
)
async def test_cpu_settings_land_in_the_cgroup(containers: Containers) -> None:
    _, handle = await containers.start(["sleep", "100"], cpu=512, cpu_limit=1536)
    cpu_dir = next(Path(d) for d in handle["cgroups"] if "/cpu/" in d)
    assert (cpu_dir / "cpu.shares").read_text().strip() == "512"
    assert (cpu_dir / "cpu.cfs_quota_us").read_text().strip() == "150000"
    assert handle["pid"] in cgroups.pids([cpu_dir])
    await containers.driver.stop(handle, "SIGTERM", 1)
    await containers.driver.wait(handle)
    await containers.driver.destroy(handle)
    assert not cpu_dir.exists() and not cpu_dir.parent.exists()
