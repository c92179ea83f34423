"""Log forwarding end to end: a real control plane, real processes, a real forward-protocol
receiver (tests/logs/outputs/receiver.py), HTTP and file outputs."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from hatoba.api.services import ApiServices
from hatoba.config import Settings
from hatoba.controllers.tasks import RunTaskRequest
from hatoba.model.service import ServiceSpec
from hatoba.model.task import LastStatus, Task
from hatoba.server import control_plane
from tests.integration.conftest import container
from tests.logs.outputs.receiver import ForwardReceiver
from tests.logs.outputs.support import wait_until

pytestmark = pytest.mark.timeout(120)

# 300 lines of 400 chars on stdout, a 1 MiB line, non-UTF-8 bytes, stderr, no final newline
WRITER = r"""
import sys
out = sys.stdout.buffer
for i in range(300):
    out.write(b"%05d " % i + b"x" * 394 + b"\n")
out.write(b"B" * (1024 * 1024) + b"\n")
out.write(b"bytes \xff\xfe end\n")
out.flush()
sys.stderr.write("to stderr\n")
sys.stderr.flush()
out.write(b"no newline")
"""


def expected_lines() -> list[str | bytes]:
    lines: list[str | bytes] = [f"{i:05d} " + "x" * 394 for i in range(300)]
    return [*lines, "B" * (1024 * 1024), b"bytes \xff\xfe end", "no newline"]


@pytest.fixture
async def receiver() -> AsyncIterator[ForwardReceiver]:
    r = ForwardReceiver()
    await r.start()
    yield r
    await r.stop()


async def run_task(
    cp: ApiServices, family: str, containers: list[dict[str, Any]], timeout: float = 30
) -> Task:
    await cp.task_definitions.register({"family": family, "containerDefinitions": containers})
    result = await cp.tasks.run(RunTaskRequest(task_definition=family))
    assert not result.failures, result.failures
    return await cp.tasks.wait_for(result.tasks[0].task_id, LastStatus.STOPPED, timeout)


def fluentd(address: str, **options: str) -> dict[str, Any]:
    return {"logDriver": "fluentd", "options": {"fluentd-address": address, **options}}


async def test_a_task_definitions_fluentd_output_gets_every_line(
    tmp_path: Path, receiver: ForwardReceiver
) -> None:
    async with control_plane(Settings(home=tmp_path / "home")) as cp:
        app = container(
            "app",
            [sys.executable, "-c", WRITER],
            logConfiguration=fluentd(receiver.address, tag="app.{{.Name}}"),
        )
        task = await run_task(cp, "writer", [app])
        assert task.exit_code == 0
        await wait_until(lambda: len(receiver.unique) == 304, 20, "304 records")
        shipper = cp.agent.log_shipper
        assert shipper is not None
        await wait_until(lambda: not shipper.pending_tasks(), 10, "the task delivered")
    by_stream = {
        s: [e.record["log"] for e in receiver.unique if e.record["stream"] == s]
        for s in ("stdout", "stderr")
    }
    assert by_stream["stdout"] == expected_lines()
    assert by_stream["stderr"] == ["to stderr"]
    rec = receiver.unique[0]
    assert rec.tag == "app.app"
    assert rec.record["task_id"] == task.task_id and rec.record["family"] == "writer"
    assert [e.record["log"] for e in receiver.unique if e.record.get("eol") is False] == [
        "no newline"
    ]


async def test_cluster_outputs_match_and_a_down_output_catches_up_after_a_restart(
    tmp_path: Path, receiver: ForwardReceiver
) -> None:
    port = receiver.port
    await receiver.stop()  # the central receiver is down
    outputs = [
        {
            "name": "central",
            "type": "forward",
            "nodes": [{"host": "127.0.0.1", "port": port}],
            "match": {"families": ["web*"]},
            "retryMin": 0.1,
            "retryMax": 0.2,
        },
        {"name": "archive", "type": "file", "path": str(tmp_path / "archive" / "{family}.log")},
    ]
    settings = Settings(home=tmp_path / "home", log_outputs=json.dumps(outputs))
    script = "for i in range(50): print('line', i)"
    async with control_plane(settings) as cp:
        web = await run_task(cp, "web-a", [container("app", [sys.executable, "-c", script])])
        await run_task(cp, "batch", [container("job", ["echo", "batch says hi"])])
        shipper = cp.agent.log_shipper
        assert shipper is not None
        archive = tmp_path / "archive"
        await wait_until(
            lambda: (archive / "web-a.log").exists() and (archive / "batch.log").exists(), 10
        )
        central = shipper.worker("central")
        assert central is not None
        await wait_until(lambda: central.failing, 10, "central to be failing")
        assert web.task_id in shipper.pending_tasks()  # its logs are still owed
    # a new control plane on the same data directory, the receiver back
    back = ForwardReceiver(port=port)
    await back.start()
    try:
        async with control_plane(settings) as cp:
            await wait_until(lambda: len(back.unique) == 50, 20, "50 records")
    finally:
        await back.stop()
    assert back.logs() == [f"line {i}" for i in range(50)]
    assert {e.record["family"] for e in back.unique} == {"web-a"}  # batch did not match
    archived = [json.loads(x) for x in (archive / "web-a.log").read_text().splitlines()]
    assert [r["log"] for r in archived] == [f"line {i}" for i in range(50)]


async def test_a_services_dropped_records_are_counted_and_reported_as_an_event(
    tmp_path: Path, receiver: ForwardReceiver
) -> None:
    port = receiver.port
    await receiver.stop()
    outputs = [
        {
            "name": "tiny",
            "type": "forward",
            "nodes": [{"host": "127.0.0.1", "port": port}],
            "bufferBytes": "8K",
            "retryMin": 0.1,
            "retryMax": 0.2,
        }
    ]
    settings = Settings(home=tmp_path / "home", log_outputs=json.dumps(outputs))
    script = "import time\nfor i in range(2000): print('l', i)\nimport sys; sys.stdout.flush()\n"
    script += "time.sleep(300)"
    async with control_plane(settings) as cp:
        await cp.task_definitions.register(
            {
                "family": "chatty",
                "containerDefinitions": [
                    container("app", [sys.executable, "-c", script], stopTimeout=1)
                ],
            }
        )
        await cp.services.create(
            ServiceSpec(service_name="chatty", task_definition="chatty", desired_count=1)
        )
        try:
            for _ in range(200):
                events = [e.message for e in await cp.services.events("chatty")]
                if any("dropped" in m for m in events):
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"no drop event: {events}")
            dropped = REGISTRY.get_sample_value(
                "hatoba_log_records_dropped_total", {"output": "tiny", "reason": "buffer_full"}
            )
            assert dropped is not None and dropped > 0
            assert any("log output tiny dropped" in m for m in events)
        finally:
            await cp.services.scale("chatty", 0)
            for _ in range(100):
                if not await cp.services.tasks("chatty"):
                    break
                await asyncio.sleep(0.1)


async def test_retention_keeps_a_stopped_tasks_logs_until_they_are_shipped(
    tmp_path: Path, receiver: ForwardReceiver
) -> None:
    port = receiver.port
    await receiver.stop()
    async with control_plane(Settings(home=tmp_path / "home")) as cp:
        app = container("app", ["echo", "keep me"], logConfiguration=fluentd(f"127.0.0.1:{port}"))
        task = await run_task(cp, "kept", [app])
        shipper = cp.agent.log_shipper
        assert shipper is not None
        await wait_until(lambda: task.task_id in shipper.pending_tasks(), 10)
        cp.agent.retention = timedelta(0)
        await cp.agent._housekeeping()  # the task is purged from the store...
        assert await cp.store.get_task(task.task_id) is None
        task_dir = cp.layout.task_dir(task.task_id)
        assert task_dir.is_dir()  # ...but its logs are kept: an output owes them
        back = ForwardReceiver(port=port)
        await back.start()
        try:
            await wait_until(lambda: back.logs() == ["keep me"], 20, "the record")
            await wait_until(lambda: not task_dir.exists(), 10, "the directory to go")
        finally:
            await back.stop()


async def test_shutdown_flushes_within_the_grace_and_keeps_the_rest(tmp_path: Path) -> None:
    slow = ForwardReceiver(ack_delay=3.0)  # every ack takes longer than the grace
    port = await slow.start()
    outputs = [
        {
            "name": "slow",
            "type": "forward",
            "nodes": [{"host": "127.0.0.1", "port": port}],
            "ackTimeout": 60,
        }
    ]
    settings = Settings(
        home=tmp_path / "home", log_outputs=json.dumps(outputs), log_flush_grace=0.5
    )
    script = "for i in range(20): print('line', i)"
    loop = asyncio.get_running_loop()
    try:
        async with control_plane(settings) as cp:
            await run_task(cp, "slowpoke", [container("app", [sys.executable, "-c", script])])
            await wait_until(lambda: len(slow.events) > 0, 10, "a chunk in flight")
            closing = loop.time()
        assert loop.time() - closing < 3.0  # the grace bounded the shutdown, not the ack
    finally:
        await slow.stop()
    # nothing was acknowledged: the next control plane sends it all again
    fast = ForwardReceiver(port=port)
    await fast.start()
    try:
        async with control_plane(settings):
            await wait_until(lambda: len(fast.unique) == 20, 20, "20 records")
    finally:
        await fast.stop()
    assert fast.logs() == [f"line {i}" for i in range(20)]


async def test_shutdown_delivers_what_is_left_before_returning(
    tmp_path: Path, receiver: ForwardReceiver
) -> None:
    settings = Settings(home=tmp_path / "home")
    script = "for i in range(3000): print('line', i)"
    app = container(
        "app", [sys.executable, "-c", script], logConfiguration=fluentd(receiver.address)
    )
    async with control_plane(settings) as cp:
        await run_task(cp, "burst", [app])
    # the control plane is gone; everything the task wrote reached the receiver
    assert receiver.logs() == [f"line {i}" for i in range(3000)]


async def test_tailed_files_are_forwarded_too(tmp_path: Path, receiver: ForwardReceiver) -> None:
    work = tmp_path / "work"
    work.mkdir()
    script = (
        "import time\n"
        "with open('app.log', 'a') as f:\n"
        "    for i in range(5):\n"
        "        f.write(f'file line {i}\\n'); f.flush(); time.sleep(0.05)\n"
        "print('stdout line')\n"
    )
    app = container(
        "app",
        [sys.executable, "-c", script],
        workingDirectory=str(work),
        logFiles=[{"path": "app.log"}],
        logConfiguration=fluentd(receiver.address),
    )
    async with control_plane(Settings(home=tmp_path / "home")) as cp:
        await run_task(cp, "tailing", [app])
        await wait_until(lambda: len(receiver.unique) == 6, 20, "6 records")
    files = [e.record for e in receiver.unique if e.record["stream"] == "file"]
    assert [r["log"] for r in files] == [f"file line {i}" for i in range(5)]
    assert {r["file"] for r in files} == {"app.log"}
    assert [e.record["log"] for e in receiver.unique if e.record["stream"] == "stdout"] == [
        "stdout line"
    ]
