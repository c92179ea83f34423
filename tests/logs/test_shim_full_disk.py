"""A full disk loses what cannot be written, never the log's framing: the shim cuts a
write that failed part-way back to the last whole record (needs root for a small tmpfs)."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from hatoba.drivers.process import ProcessDriver
from hatoba.drivers.protocol import ContainerSpec
from hatoba.logs.reader import RecordCursor
from hatoba.model.layout import DataLayout

WRITER = r"""
import os, sys, time
for i in range(400):  # ~400 KB: more than the disk has left
    sys.stdout.write("%04d " % i + "f" * 995 + "\n")
    sys.stdout.flush()
while not os.path.exists(sys.argv[1]):
    time.sleep(0.02)
for i in range(10):
    print("after %d" % i, flush=True)
"""


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "small"
    mnt.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


async def test_framing_survives_enospc_and_logging_resumes(
    tmp_path: Path, small_disk: Path
) -> None:
    layout = DataLayout(tmp_path / "home")
    driver = ProcessDriver(layout)
    ballast = small_disk / "ballast"
    ballast.write_bytes(b"\0" * 100 * 1024)
    gate = tmp_path / "gate"
    spec = ContainerSpec(
        task_id="t-full",
        name="app",
        argv=["python3", "-c", WRITER, str(gate)],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        state_dir=layout.container_dir("t-full", "app"),
        log_path=small_disk / "stdio.log",
    )
    handle = await driver.start(spec)
    try:
        for _ in range(500):  # the disk fills up
            if (spec.state_dir / "shim.err").exists():
                break
            await asyncio.sleep(0.02)
        assert b"No space left" in (spec.state_dir / "shim.err").read_bytes()
        ballast.unlink()  # space comes back
        gate.touch()
        assert (await driver.wait(handle)).exit_code == 0
    finally:
        await driver.destroy(handle)
    cursor = RecordCursor(spec.log_path)
    lines = [r.data for r, _ in cursor.read_all()]
    assert cursor.offset == spec.log_path.stat().st_size  # every byte is whole records
    before = [line for line in lines if not line.startswith(b"after")]
    assert 50 < len(before) < 400  # some were lost to the full disk...
    assert all(len(line) == 1000 and line.endswith(b"f" * 995) for line in before)
    assert lines[len(before) :] == [b"after %d" % i for i in range(10)]  # ...none after
