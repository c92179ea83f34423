"""Containers outlive the control plane: a process that started them is SIGKILLed and a new
driver re-adopts them from the saved handle, with exit code and logs intact."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from hatoba.drivers.process import ProcessDriver
from hatoba.model.layout import DataLayout

from .conftest import Containers, eventually, lines

CONTROL_PLANE = """
import asyncio, json, sys, time
from pathlib import Path
from typing import Any
from hatoba.drivers.process import ProcessDriver
from hatoba.drivers.protocol import ContainerSpec
from hatoba.model.layout import DataLayout

async def main() -> None:
    layout = DataLayout(Path(sys.argv[1]))
    spec = ContainerSpec(
        task_id=sys.argv[2], name="app", argv=["sh", "-c", sys.argv[3]], env={},
        state_dir=layout.container_dir(sys.argv[2], "app") / "process",
        log_path=layout.container_log(sys.argv[2], "app"),
    )
    handle = await ProcessDriver(layout).start(spec)
    print(json.dumps(handle), flush=True)
    time.sleep(3600)  # "the control plane", busy until it is killed

asyncio.run(main())
"""


def start_elsewhere(layout: DataLayout, task_id: str, script: str) -> tuple[dict[str, Any], int]:
    """Start a container from a separate Python process, SIGKILL that process, return the
    handle it printed."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", CONTROL_PLANE, str(layout.home), task_id, script],
        stdout=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    handle = json.loads(proc.stdout.readline())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    return handle, proc.pid


async def test_running_container_survives_control_plane_kill(containers: Containers) -> None:
    handle, _ = start_elsewhere(containers.layout, "t-survive", "sleep 1; echo done; exit 7")
    containers.handles.append(handle)
    driver = ProcessDriver(containers.layout)  # the restarted control plane
    assert await driver.recover(handle)
    assert driver.is_running(handle)
    status = await driver.wait(handle)
    assert status.exit_code == 7
    assert lines(handle["log_path"]) == [b"done"]


async def test_exit_while_nobody_watched_is_recorded(containers: Containers) -> None:
    handle, _ = start_elsewhere(containers.layout, "t-unwatched", "echo bye; exit 5")
    containers.handles.append(handle)
    exit_file = Path(handle["state_dir"]) / "exit"
    await eventually(exit_file.exists)
    driver = ProcessDriver(containers.layout)
    assert await driver.recover(handle)
    assert not driver.is_running(handle)
    assert (await driver.wait(handle)).exit_code == 5
    assert lines(handle["log_path"]) == [b"bye"]


async def test_shim_killed_means_lost_exit_and_workload_ended(containers: Containers) -> None:
    _, handle = await containers.start(["sleep", "100"])
    os.kill(handle["shim_pid"], signal.SIGKILL)
    status = await containers.driver.wait(handle)
    assert status.exit_code is None
    assert status.reason == "HostError: task shim exited without recording the container's exit"
    await eventually(lambda: not Path(f"/proc/{handle['pid']}").exists() or _zombie(handle["pid"]))
    assert not await containers.driver.recover(handle)


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return True
    return stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3] == b"Z"


async def test_recover_rejects_a_recycled_pid(containers: Containers) -> None:
    _, handle = await containers.start(["sleep", "100"])
    forged = {**handle, "shim_starttime": handle["shim_starttime"] + 1}
    assert not await containers.driver.recover(forged)
    assert not containers.driver.is_running(forged)
    assert await containers.driver.recover(handle)
