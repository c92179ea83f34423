"""ProcessDriver with real processes: output capture, exit codes, start errors, env/user."""

from __future__ import annotations

import os
import signal

import pytest

from hatoba.drivers.process import ProcessDriver
from hatoba.drivers.protocol import StartError, Ulimit
from hatoba.logs.records import NO_EOL, STDERR, STDOUT

from .conftest import Containers, lines, read_log


async def test_stdout_and_stderr_become_records(containers: Containers) -> None:
    spec, handle = await containers.start(
        ["sh", "-c", "echo out-1; echo err-1 >&2; echo out-2; printf tail"]
    )
    status = await containers.driver.wait(handle)
    assert status.exit_code == 0 and status.signal is None and not status.oom_killed
    records = read_log(spec.log_path)
    assert [(r.stream, r.data) for r in records if r.stream == STDOUT] == [
        (STDOUT, b"out-1"),
        (STDOUT, b"out-2"),
        (STDOUT, b"tail"),
    ]
    assert [r.data for r in records if r.stream == STDERR] == [b"err-1"]
    assert records[-1].flags == NO_EOL and records[0].flags == 0
    assert all(r.timestamp_ns > 1_600_000_000 * 10**9 for r in records)


async def test_exit_code_passes_through(containers: Containers) -> None:
    _, handle = await containers.start(["sh", "-c", "exit 3"])
    assert (await containers.driver.wait(handle)).exit_code == 3
    assert not containers.driver.is_running(handle)
    assert await containers.driver.recover(handle)


async def test_killed_by_signal_maps_to_128_plus_n(containers: Containers) -> None:
    _, handle = await containers.start(["sh", "-c", "kill -USR1 $$"])
    status = await containers.driver.wait(handle)
    assert (status.exit_code, status.signal) == (128 + signal.SIGUSR1, signal.SIGUSR1)


async def test_missing_executable_is_a_clear_start_error(containers: Containers) -> None:
    with pytest.raises(StartError) as err:
        await containers.start(["foo-does-not-exist"])
    assert err.value.reason == (
        'CannotStartContainerError: exec: "foo-does-not-exist": executable file not found in $PATH'
    )
    with pytest.raises(StartError, match=r'exec: "/nope/x": stat /nope/x: no such file'):
        await containers.start(["/nope/x"])
    with pytest.raises(StartError, match=r'exec: "/etc/passwd": permission denied'):
        await containers.start(["/etc/passwd"])


async def test_unknown_user_and_cwd_are_start_errors(containers: Containers) -> None:
    with pytest.raises(StartError, match="unable to find user no-such-user"):
        await containers.start(["true"], user="no-such-user")
    with pytest.raises(StartError, match=r'chdir to cwd \("/no/such/dir"\)'):
        await containers.start(["true"], cwd="/no/such/dir")


async def test_exec_failure_after_spawn_reports_stage(containers: Containers) -> None:
    # Executable for root (the pre-check) but not for nobody: the shim's exec fails.
    script = containers.layout.home / "root-only.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o700)
    os.chmod(containers.layout.home, 0o755)
    with pytest.raises(StartError) as err:
        await containers.start([str(script)], user="nobody")
    assert err.value.reason == f'CannotStartContainerError: exec: "{script}": permission denied'


async def test_env_cwd_and_user_are_applied(containers: Containers) -> None:
    spec, handle = await containers.start(
        ["sh", "-c", 'echo "$GREETING"; pwd; id -u; id -g; echo "$HOME"'],
        env={"GREETING": "héllo wörld", "PATH": "/usr/bin:/bin"},
        cwd="/usr",
        user="nobody",
    )
    assert (await containers.driver.wait(handle)).exit_code == 0
    assert lines(spec.log_path) == [
        "héllo wörld".encode(),
        b"/usr",
        b"65534",
        b"65534",
        b"/nonexistent",
    ]


async def test_ulimit_nofile_is_applied(containers: Containers) -> None:
    spec, handle = await containers.start(
        ["sh", "-c", "ulimit -n; ulimit -Hn"], ulimits=[Ulimit("nofile", 1024, 2048)]
    )
    assert (await containers.driver.wait(handle)).exit_code == 0
    assert lines(spec.log_path) == [b"1024", b"2048"]


async def test_unknown_ulimit_name_is_rejected(containers: Containers) -> None:
    with pytest.raises(StartError, match='unknown ulimit "nofiles"'):
        await containers.start(["true"], ulimits=[Ulimit("nofiles", 1, 1)])


async def test_without_cgroups_memory_becomes_rlimit_as(containers: Containers) -> None:
    from hatoba.drivers.process.cgroups import CgroupVersion

    containers.driver = ProcessDriver(containers.layout, cgroup_version=CgroupVersion.NONE)
    spec, handle = await containers.start(["sh", "-c", "ulimit -v"], memory=64)
    assert (await containers.driver.wait(handle)).exit_code == 0
    assert lines(spec.log_path) == [str(64 * 1024).encode()]
    assert handle["cgroups"] == []
