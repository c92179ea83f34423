"""Capture guarantees on real processes, through the control plane and the log API:
long lines never split, overlong ones joined back, raw bytes kept, per-container maximum,
multiline joining."""

from __future__ import annotations

import os
from pathlib import Path

from hatoba.api.services import ApiServices
from hatoba.config import Settings
from hatoba.server import control_plane
from tests.integration.conftest import container, run_to_end
from tests.integration.logs_support import api_logs, data

MIB = 1024 * 1024


def payload(path: Path, size: int) -> bytes:
    """Random bytes (non-UTF-8 included) without newlines, written to ``path`` with one."""
    raw = os.urandom(size).replace(b"\n", b"\x00")
    path.write_bytes(raw + b"\n")
    return raw


async def test_one_mib_line_round_trips_byte_exact(cp: ApiServices, tmp_path: Path) -> None:
    line = payload(tmp_path / "line", MIB)
    task = await run_to_end(cp, "big", [container("app", ["cat", str(tmp_path / "line")])])
    got = await api_logs(cp, task.task_id)
    assert len(got) == 1 and "partial" not in got[0]
    assert data(got[0]) == line
    raw = await api_logs(cp, task.task_id, raw=True)
    assert len(raw) == 1 and "partial" not in raw[0]  # one record: never split below 1 MiB


async def test_three_mib_line_comes_back_joined_partials_only_when_raw(
    cp: ApiServices, tmp_path: Path
) -> None:
    line = payload(tmp_path / "line", 3 * MIB + 5)
    task = await run_to_end(cp, "huge", [container("app", f"cat {tmp_path / 'line'}; echo after")])
    got = await api_logs(cp, task.task_id)
    assert [data(o) for o in got] == [line, b"after"]
    assert not any("partial" in o for o in got)
    raw = await api_logs(cp, task.task_id, raw=True)
    assert [len(data(o)) for o in raw] == [MIB, MIB, MIB, 5, 5]
    assert [o.get("partial", False) for o in raw] == [True, True, True, False, False]
    assert b"".join(data(o) for o in raw[:4]) == line


async def test_non_utf8_bytes_survive_as_base64(cp: ApiServices) -> None:
    task = await run_to_end(
        cp, "bytes", [container("app", r"printf 'caf\351\n\377\376\000\nok \342\234\223\n'")]
    )
    got = await api_logs(cp, task.task_id)
    assert [data(o) for o in got] == [b"caf\xe9", b"\xff\xfe\x00", "ok ✓".encode()]
    assert ["messageBase64" in o for o in got] == [True, True, False]
    assert got[2]["message"] == "ok ✓"


async def test_max_line_is_per_container_with_a_node_default(
    cp: ApiServices, tmp_path: Path
) -> None:
    script = "python3 -c \"print('x' * 5000); print('y' * 10)\""
    small = container(
        "app",
        script,
        logConfiguration={"logDriver": "json-file", "options": {"hatoba-max-line": "1K"}},
    )
    task = await run_to_end(cp, "capped", [small])
    raw = await api_logs(cp, task.task_id, raw=True)
    assert [len(data(o)) for o in raw] == [1024] * 4 + [904, 10]
    assert [data(o) for o in await api_logs(cp, task.task_id)] == [b"x" * 5000, b"y" * 10]
    # the node's default (HATOBA_LOG_MAX_LINE) for containers that do not say
    settings = Settings(home=tmp_path / "other", log_max_line=2048)
    async with control_plane(settings, autoscaling=False) as other:
        task = await run_to_end(other, "plain", [container("app", script)])
        raw = await api_logs(other, task.task_id, raw=True)
        assert [len(data(o)) for o in raw] == [2048, 2048, 904, 10]


TRACEBACK = r"""
import sys, time
print("2025-01-01 INFO starting", flush=True)
try:
    1 / 0
except ZeroDivisionError:
    import traceback
    print("2025-01-01 ERROR failed", file=sys.stderr)
    traceback.print_exc()
sys.stderr.flush()
print("2025-01-01 INFO still here", flush=True)
"""


async def test_multiline_start_joins_stack_traces_at_read_time(cp: ApiServices) -> None:
    app = container(
        "app",
        ["python3", "-c", TRACEBACK],
        logConfiguration={
            "logDriver": "json-file",
            "options": {"hatoba-multiline-start": r"^\d{4}-\d{2}-\d{2} "},
        },
    )
    task = await run_to_end(cp, "trace", [app])
    got = await api_logs(cp, task.task_id)
    by_stream = {o["stream"]: [] for o in got}
    for o in got:
        by_stream[o["stream"]].append(data(o).decode())
    assert by_stream["stdout"] == ["2025-01-01 INFO starting", "2025-01-01 INFO still here"]
    [trace] = by_stream["stderr"]
    assert trace.startswith("2025-01-01 ERROR failed\nTraceback (most recent call last):\n")
    assert trace.endswith("ZeroDivisionError: division by zero")
    # the stored log is what the process wrote: --raw shows the lines one by one
    raw = [o for o in await api_logs(cp, task.task_id, raw=True) if o["stream"] == "stderr"]
    assert len(raw) == trace.count("\n") + 1
