"""exec_process: commands run inside the container's environment, with and without a tty."""

from __future__ import annotations

from pathlib import Path

from hatoba.drivers.process import cgroups
from hatoba.drivers.protocol import ExecProcess, ExecSpec

from .conftest import Containers


async def collect(proc: ExecProcess) -> dict[int, bytes]:
    out: dict[int, bytes] = {1: b"", 2: b""}
    while (chunk := await proc.read_output()) is not None:
        out[chunk[0]] += chunk[1]
    return out


async def test_exec_runs_with_the_container_env_cwd_user_and_cgroup(
    containers: Containers,
) -> None:
    spec, handle = await containers.start(
        ["sleep", "100"], env={"FOO": "bar"}, cwd="/usr", user="nobody"
    )
    proc = await containers.driver.exec_process(
        handle,
        spec,
        ExecSpec(["sh", "-c", 'id -u; pwd; echo "$FOO"; cat /proc/self/cgroup; echo oops >&2']),
    )
    out = await collect(proc)
    assert await proc.wait() == 0
    got = out[1].decode().splitlines()
    assert got[:3] == ["65534", "/usr", "bar"]
    if handle["cgroups"]:
        assert any(f"/{spec.task_id}/{spec.name}" in line for line in got[3:])
    assert out[2] == b"oops\n"


async def test_exec_stdin_and_exit_code(containers: Containers) -> None:
    spec, handle = await containers.start(["sleep", "100"])
    proc = await containers.driver.exec_process(
        handle, spec, ExecSpec(["sh", "-c", "tr a-z A-Z; exit 4"], env={"X": "1"})
    )
    await proc.write_stdin(b"hello\n")
    await proc.close_stdin()
    assert (await collect(proc))[1] == b"HELLO\n"
    assert await proc.wait() == 4


async def test_exec_missing_command_exits_127(containers: Containers) -> None:
    spec, handle = await containers.start(["sleep", "100"])
    proc = await containers.driver.exec_process(handle, spec, ExecSpec(["no-such-cmd"]))
    out = await collect(proc)
    assert await proc.wait() == 127
    assert b'exec: "no-such-cmd": executable file not found in $PATH' in out[2]


async def test_exec_with_tty(containers: Containers) -> None:
    spec, handle = await containers.start(["sleep", "100"])
    proc = await containers.driver.exec_process(
        handle, spec, ExecSpec(["sh", "-c", "tty; read x; stty size"], tty=True)
    )
    await proc.resize(40, 120)
    await proc.write_stdin(b"go\n")
    out = await collect(proc)
    assert await proc.wait() == 0
    got = out[1].decode().splitlines()  # the tty echoes our "go" too
    assert any(line.startswith("/dev/pts/") for line in got), got
    assert "40 120" in got
    assert out[2] == b""


async def test_exec_kill(containers: Containers) -> None:
    spec, handle = await containers.start(["sleep", "100"])
    proc = await containers.driver.exec_process(handle, spec, ExecSpec(["sleep", "100"]))
    await proc.kill()
    assert await proc.wait() == 137
    assert cgroups.pids(Path(d) for d in handle["cgroups"]) == (
        {handle["pid"]} if handle["cgroups"] else set()
    )
