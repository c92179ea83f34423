"""The shim's log capture: long lines, PARTIAL records, raw bytes, bursts before exit."""

from __future__ import annotations

import os
from pathlib import Path

from hatoba.logs.records import PARTIAL, STDOUT

from .conftest import Containers, lines, read_log


def payload(path: Path, size: int) -> bytes:
    """Random bytes (non-UTF-8 included) without newlines, written to ``path``."""
    data = os.urandom(size).replace(b"\n", b"\x00")
    path.write_bytes(data + b"\n")
    return data


async def test_one_mib_line_round_trips_as_one_record(
    containers: Containers, tmp_path: Path
) -> None:
    data = payload(tmp_path / "line", 1024 * 1024)
    spec, handle = await containers.start(["cat", str(tmp_path / "line")])
    assert (await containers.driver.wait(handle)).exit_code == 0
    records = read_log(spec.log_path)
    assert len(records) == 1 and records[0].flags == 0
    assert records[0].data == data


async def test_overlong_line_is_cut_into_partials(containers: Containers, tmp_path: Path) -> None:
    data = payload(tmp_path / "line", 3 * 1024 * 1024 + 5)
    spec, handle = await containers.start(
        ["sh", "-c", f"cat {tmp_path / 'line'}; echo next"], max_line_bytes=1024 * 1024
    )
    assert (await containers.driver.wait(handle)).exit_code == 0
    records = read_log(spec.log_path)
    assert [len(r.data) for r in records] == [1024 * 1024] * 3 + [5, 4]
    assert [r.flags & PARTIAL for r in records] == [PARTIAL] * 3 + [0, 0]
    assert lines(spec.log_path) == [data, b"next"]


async def test_non_utf8_bytes_survive(containers: Containers) -> None:
    spec, handle = await containers.start(["printf", r"\377\376caf\351\n\000\001"])
    assert (await containers.driver.wait(handle)).exit_code == 0
    assert lines(spec.log_path, STDOUT) == [b"\xff\xfecaf\xe9", b"\x00\x01"]


async def test_burst_then_exit_loses_nothing(containers: Containers) -> None:
    script = (
        "import sys\nfor i in range(300):\n    sys.stdout.write('%04d' % i + 'x' * 396 + '\\n')\n"
    )
    spec, handle = await containers.start(["python3", "-c", script])
    assert (await containers.driver.wait(handle)).exit_code == 0
    got = lines(spec.log_path)
    assert got == [b"%04d" % i + b"x" * 396 for i in range(300)]
