"""The disk buffer (task logs + saved offsets) under outages, limits and restarts, with a real
forward receiver."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

from hatoba.logs.records import FILE, STDERR, STDOUT, LogRecord
from tests.logs.outputs.receiver import ForwardReceiver
from tests.logs.outputs.support import (
    T0,
    Harness,
    forward_spec,
    meta,
    numbered,
    wait_until,
    write_lines,
)


def decoded(lines: list[bytes]) -> list[str]:
    return [line.decode() for line in lines]


async def test_output_down_then_back_gets_everything_in_order(tmp_path: Path):
    recv = ForwardReceiver()
    port = await recv.start()
    await recv.stop()  # down from the start
    log = tmp_path / "t1" / "app" / "stdio.log"
    h = Harness(forward_spec(recv.address, chunkRecords=100), tmp_path / "state")
    h.add(meta(), log)
    async with h.running() as worker:
        write_lines(log, numbered(1000))
        await wait_until(lambda: worker.failing, what="the output to fail")
        write_lines(log, numbered(1000, start=1000), t0=T0 + 10**12)
        await asyncio.sleep(0.3)  # a few retries
        assert h.metric("hatoba_log_output_failures_total") >= 2
        back = ForwardReceiver(port=port)
        await back.start()
        try:
            await wait_until(lambda: len(back.unique) == 2000, what="2000 records")
            await wait_until(lambda: not worker.failing)
        finally:
            await back.stop()
    assert back.logs() == decoded(numbered(2000))
    assert h.metric("hatoba_log_records_dropped_total", reason="buffer_full") == 0


async def test_over_the_limit_the_oldest_are_dropped_counted_and_reported(tmp_path: Path):
    recv = ForwardReceiver()
    port = await recv.start()
    await recv.stop()
    a = tmp_path / "t1" / "app" / "stdio.log"
    b = tmp_path / "t2" / "app" / "stdio.log"
    # two sources, interleaved in time: a's lines at even, b's at odd microseconds
    write_lines(a, numbered(1000, "a"), t0=T0)
    write_lines(b, numbered(1000, "b"), t0=T0 + 500)
    record_size = 16 + len(b"a 000000")
    limit = 300 * record_size  # 300 of the 2000 records fit
    h = Harness(forward_spec(recv.address), tmp_path / "state", limit=limit)
    h.add(meta("t1", service="api"), a)
    h.add(meta("t2"), b)
    async with h.running():
        await wait_until(lambda: h.notices, what="a drop notice")
        assert sum(h.buffer.backlog().values()) <= limit
        back = ForwardReceiver(port=port)
        await back.start()
        try:
            await wait_until(lambda: len(back.unique) == 300, what="the newest 300")
        finally:
            await back.stop()
    dropped = h.metric("hatoba_log_records_dropped_total", reason="buffer_full")
    assert dropped == 1700
    notice = h.notices[0]
    assert notice.reason == "buffer_full" and notice.total == 1700
    assert {(m.task_id, m.service) for m, _ in notice.counts} == {("t1", "api"), ("t2", None)}
    got = back.logs()
    # the survivors are the newest 150 of each source, each source in its order
    assert [x for x in got if x.startswith("a")] == decoded(numbered(150, "a", start=850))
    assert [x for x in got if x.startswith("b")] == decoded(numbered(150, "b", start=850))


async def test_a_restarted_shipper_resumes_from_its_offsets(tmp_path: Path):
    recv = ForwardReceiver()
    await recv.start()
    log = tmp_path / "t1" / "app" / "stdio.log"
    spec = forward_spec(recv.address, chunkRecords=64)
    try:
        first = Harness(spec, tmp_path / "state")
        first.add(meta(), log)
        write_lines(log, numbered(500))
        async with first.running():
            await wait_until(lambda: len(recv.unique) == 500)
        write_lines(log, numbered(500, start=500), t0=T0 + 10**12)  # while "stopped"
        second = Harness(spec, tmp_path / "state")  # state loaded from disk
        assert second.buffer.sources["t1/app"].offset > 0
        async with second.running():
            await wait_until(lambda: len(recv.events) >= 1000)
            await asyncio.sleep(0.1)
    finally:
        await recv.stop()
    assert recv.logs(unique=False) == decoded(numbered(1000))  # no loss, no duplicate


async def test_a_crash_mid_chunk_resends_only_that_chunk(tmp_path: Path):
    hung = ForwardReceiver(ack=False)
    await hung.start()
    log = tmp_path / "t1" / "app" / "stdio.log"
    write_lines(log, numbered(300))
    first = Harness(forward_spec(hung.address, chunkRecords=100, ackTimeout=30), tmp_path / "s")
    first.add(meta(), log)
    task = asyncio.create_task(first.worker.run())
    await wait_until(lambda: len(hung.events) == 100, what="a chunk in flight")
    task.cancel()  # killed while waiting for the ack
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await hung.stop()
    good = ForwardReceiver()
    await good.start()
    try:
        second = Harness(forward_spec(good.address, chunkRecords=100), tmp_path / "s")
        async with second.running():
            await wait_until(lambda: len(good.unique) == 300)
    finally:
        await good.stop()
    assert good.logs() == decoded(numbered(300))
    assert good.chunks[0] == hung.chunks[0]  # same ranges, same chunk id: dedupable


async def test_split_lines_stay_whole_across_a_restart(tmp_path: Path):
    recv = ForwardReceiver()
    await recv.start()
    log = tmp_path / "t1" / "app" / "stdio.log"
    long_line = b"L" * 5000
    records = [
        LogRecord(T0, STDOUT, long_line[:2000], 1),
        LogRecord(T0 + 1, STDERR, b"err between", 0),  # completes while stdout is open
        LogRecord(T0 + 2, STDOUT, long_line[2000:4000], 1),
    ]
    with log.open("ab") if log.exists() else _create(log) as f:
        for r in records:
            f.write(r.encode())
    spec = forward_spec(recv.address)
    try:
        first = Harness(spec, tmp_path / "state")
        first.add(meta(), log)
        async with first.running():
            await wait_until(lambda: recv.logs() == ["err between"])
        with log.open("ab") as f:
            f.write(LogRecord(T0 + 3, STDOUT, long_line[4000:], 0).encode())
            f.write(LogRecord(T0 + 4, STDOUT, b"after", 0).encode())
        second = Harness(spec, tmp_path / "state")
        async with second.running():
            await wait_until(lambda: "after" in recv.logs())
    finally:
        await recv.stop()
    got = recv.logs()
    assert got[-2:] == ["L" * 5000, "after"]
    # at least once: the stderr line came before the open stdout line closed, so it may
    # come again after the restart; nothing is cut or lost
    assert set(got) == {"err between", "L" * 5000, "after"}


def _create(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("ab")


async def test_finished_sources_leave_the_buffer_once_delivered(tmp_path: Path):
    recv = ForwardReceiver()
    await recv.start()
    log = tmp_path / "t1" / "app" / "stdio.log"
    write_lines(log, [b"one", b"two"])
    with log.open("ab") as f:  # a last line without newline, cut: closed at the end
        f.write(LogRecord(T0 + 10, STDOUT, b"tail", 1).encode())
    h = Harness(forward_spec(recv.address), tmp_path / "state")
    h.add(meta(), log)
    try:
        async with h.running() as worker:
            await wait_until(lambda: len(recv.unique) == 2)
            assert h.buffer.pending_tasks() == {"t1"}
            h.buffer.mark_finished("t1")
            worker.wake()
            await wait_until(lambda: not h.buffer.pending_tasks(), what="t1 retired")
    finally:
        await recv.stop()
    assert recv.logs() == ["one", "two", "tail"]
    assert recv.unique[2].record["eol"] is False
    assert "t1/app" in h.buffer.done
    assert not h.buffer.add(meta(), log)  # delivered once, never again


async def test_stop_with_the_output_down_returns_at_once_and_keeps_the_backlog(tmp_path: Path):
    log = tmp_path / "t1" / "app" / "stdio.log"
    write_lines(log, numbered(10))
    h = Harness(forward_spec("127.0.0.1:1", retryMin=30, retryMax=30), tmp_path / "state")
    h.add(meta(), log)
    task = asyncio.create_task(h.worker.run())
    await wait_until(lambda: h.worker.failing)
    h.worker.stop()
    await asyncio.wait_for(task, 2)  # not the 30 s back-off
    again = Harness(forward_spec("127.0.0.1:1"), tmp_path / "state")
    assert again.buffer.sources["t1/app"].offset == 0


async def test_a_tailed_file_is_read_only_as_far_as_its_tailer_made_durable(tmp_path: Path):
    recv = ForwardReceiver()
    await recv.start()
    files = tmp_path / "t1" / "app" / "files"
    log = files / "app.log.log"
    write_lines(log, numbered(3, "durable"), stream=FILE)
    durable = log.stat().st_size
    write_lines(log, numbered(2, "not yet"), stream=FILE)  # written, not yet in the tailer's state
    state = files / ".tail-state.json"
    state.write_text(json.dumps({"sources": {"app.log": {"records": durable}}}))
    h = Harness(forward_spec(recv.address), tmp_path / "state")
    h.add(meta(label="file:app.log"), log)
    try:
        async with h.running() as worker:
            await wait_until(lambda: len(recv.unique) == 3)
            await asyncio.sleep(0.2)
            assert len(recv.unique) == 3
            state.write_text(json.dumps({"sources": {"app.log": {"records": log.stat().st_size}}}))
            worker.wake()
            await wait_until(lambda: len(recv.unique) == 5)
    finally:
        await recv.stop()
    assert recv.unique[0].record["stream"] == "file" and recv.unique[0].record["file"] == "app.log"
