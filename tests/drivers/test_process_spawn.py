"""How the shim is spawned: its state dir is its own (a restart clears the last run's state),
and nothing the control plane holds open leaks into it."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from pathlib import Path

from .conftest import Containers


async def test_a_restart_in_the_same_state_dir_starts_clean(containers: Containers) -> None:
    spec, first = await containers.start(["sh", "-c", "exit 7"])
    assert (await containers.driver.wait(first)).exit_code == 7
    assert (spec.state_dir / "exit").exists()
    # no destroy in between: the last run's exit file must not read as this run's
    again = await containers.driver.start(dataclasses.replace(spec, argv=["sleep", "30"]))
    containers.handles.append(again)
    assert not (spec.state_dir / "exit").exists()
    assert containers.driver.is_running(again)
    await containers.driver.stop(again, "SIGTERM", 5)
    assert (await containers.driver.wait(again)).exit_code == 128 + 15


async def test_the_shim_inherits_no_descriptors(containers: Containers, tmp_path: Path) -> None:
    leak = os.open(tmp_path / "leak", os.O_WRONLY | os.O_CREAT)
    os.set_inheritable(leak, True)  # even one marked inheritable stays out
    try:
        _, handle = await containers.start(["sleep", "30"])
    finally:
        os.close(leak)
    shim_fds = {os.readlink(f"/proc/{handle['shim_pid']}/fd/{fd}") for fd in _fds(handle)}
    assert str(tmp_path / "leak") not in shim_fds
    assert handle["shim_starttime"] > 0 and handle["starttime"] > 0
    pid_file = Path(handle["state_dir"]) / "pid"
    for _ in range(100):  # written just after the report
        if pid_file.exists():
            break
        await asyncio.sleep(0.01)
    assert pid_file.read_text().split() == [
        "shim",
        str(handle["shim_pid"]),
        str(handle["shim_starttime"]),
        "workload",
        str(handle["pid"]),
        str(handle["starttime"]),
    ]


def _fds(handle: dict[str, object]) -> list[str]:
    return os.listdir(f"/proc/{handle['shim_pid']}/fd")
