"""RecordCursor and follow_records: joining, resume offsets, chunked reads, following."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from hatoba.logs.multiline import MultilineRule
from hatoba.logs.reader import ReadOptions, RecordCursor
from hatoba.logs.records import NO_EOL, PARTIAL, STDERR, STDOUT
from hatoba.logs.source import follow_records

from .support import rec, write_records


def test_partials_join_and_resume_offsets_never_skip(tmp_path: Path) -> None:
    log = tmp_path / "stdio.log"
    starts = write_records(
        log,
        [
            rec(1, b"a1", STDOUT, PARTIAL),
            rec(2, b"err", STDERR),
            rec(3, b"a2", STDOUT),
            rec(4, b"next", STDOUT),
        ],
    )
    got = RecordCursor(log).read_all()
    assert [(r.data, r.stream) for r, _ in got] == [
        (b"err", STDERR),
        (b"a1a2", STDOUT),
        (b"next", STDOUT),
    ]
    # "err" completed while stdout's line was open: resuming there re-reads that line
    assert [off for _, off in got] == [starts[0], starts[3], log.stat().st_size]
    assert got[1][0].timestamp_ns == 1  # a joined line keeps its first fragment's time
    for i, (_, off) in enumerate(got):  # resuming anywhere: the rest, perhaps one repeat
        cursor = RecordCursor(log, off)
        again = [r.data for r, _ in cursor.read_all() + cursor.finish()]
        rest = [r.data for r, _ in got[i + 1 :]]
        assert again[len(again) - len(rest) :] == rest
        assert set(again[: len(again) - len(rest)]) <= {r.data for r, _ in got[: i + 1]}


def test_raw_keeps_fragments_with_exact_offsets(tmp_path: Path) -> None:
    log = tmp_path / "stdio.log"
    write_records(log, [rec(1, b"a1", flags=PARTIAL), rec(2, b"a2")])
    got = RecordCursor(log, options=ReadOptions(raw=True)).read_all()
    assert [(r.data, r.partial) for r, _ in got] == [(b"a1", True), (b"a2", False)]
    assert got[0][1] == 18


def test_a_record_bigger_than_the_chunk_is_read_whole(tmp_path: Path) -> None:
    log = tmp_path / "stdio.log"
    big = b"x" * 100_000
    write_records(log, [rec(1, b"small"), rec(2, big), rec(3, b"after")])
    cursor = RecordCursor(log)
    out = []
    while batch := cursor.read(max_bytes=1000):
        out.extend(r.data for r, _ in batch)
    assert out == [b"small", big, b"after"]


def test_torn_tail_waits_and_unterminated_partial_ends_no_eol(tmp_path: Path) -> None:
    log = tmp_path / "stdio.log"
    write_records(log, [rec(1, b"whole"), rec(2, b"cut", flags=PARTIAL)])
    with log.open("ab") as f:
        f.write(rec(3, b"torn-record").encode()[:20])
    cursor = RecordCursor(log)
    assert [r.data for r, _ in cursor.read_all()] == [b"whole"]
    finished = cursor.finish()
    assert [(r.data, r.flags) for r, _ in finished] == [(b"cut", NO_EOL)]


def test_multiline_groups_per_stream(tmp_path: Path) -> None:
    log = tmp_path / "stdio.log"
    s = 1_000_000_000
    write_records(
        log,
        [
            rec(1 * s, b"2024-01-01 boom"),
            rec(1 * s + 1, b"  at a()"),
            rec(1 * s + 2, b"2024-01-01 other", STDERR),
            rec(1 * s + 3, b"  at b()"),
            rec(1 * s + 4, b"  err cont", STDERR),
            rec(2 * s, b"2024-01-02 next"),
        ],
    )
    rule = MultilineRule(re.compile(r"^\d{4}-"))
    got = RecordCursor(log, options=ReadOptions(multiline=rule)).read_all()
    assert [r.data for r, _ in got] == [b"2024-01-01 boom\n  at a()\n  at b()"]
    cursor = RecordCursor(log, options=ReadOptions(multiline=rule))
    cursor.read_all()
    rest = sorted(r.data for r, _ in cursor.finish())
    assert rest == [b"2024-01-01 other\n  err cont", b"2024-01-02 next"]


def test_multiline_timeout_is_judged_on_record_times(tmp_path: Path) -> None:
    log = tmp_path / "stdio.log"
    s = 1_000_000_000
    write_records(
        log,
        [
            rec(0, b"START one"),
            rec(s // 2, b"cont"),
            rec(3 * s, b"too late"),
            rec(4 * s, b"START two"),
        ],
    )
    rule = MultilineRule(re.compile("^START"), timeout_ns=s)
    cursor = RecordCursor(log, options=ReadOptions(multiline=rule))
    got = [r.data for r, _ in cursor.read_all() + cursor.finish()]
    assert got == [b"START one\ncont", b"too late", b"START two"]
    # following live: a group nothing can join any more is flushed by the clock
    cursor = RecordCursor(log, options=ReadOptions(multiline=rule))
    cursor.read_all()
    assert [r.data for r, _ in cursor.flush_idle(now_ns=4 * s + s // 2)] == []
    assert [r.data for r, _ in cursor.flush_idle(now_ns=6 * s)] == [b"START two"]


def test_a_pattern_that_never_matches_changes_nothing(tmp_path: Path) -> None:
    log = tmp_path / "stdio.log"
    write_records(log, [rec(1, b"a"), rec(2, b"b"), rec(3, b"c", flags=NO_EOL)])
    rule = MultilineRule(re.compile("^NEVER"))
    cursor = RecordCursor(log, options=ReadOptions(multiline=rule))
    got = [(r.data, r.flags) for r, _ in cursor.read_all() + cursor.finish()]
    assert got == [(b"a", 0), (b"b", 0), (b"c", NO_EOL)]


async def test_follow_records_until_finished_and_resume(tmp_path: Path) -> None:
    log = tmp_path / "stdio.log"
    done = asyncio.Event()

    async def finished() -> bool:
        return done.is_set()

    got: list[tuple[bytes, int]] = []

    async def consume(start: int) -> None:
        async for r, off in follow_records(log, start, finished=finished, poll_interval=0.01):
            got.append((r.data, off))

    reader = asyncio.create_task(consume(0))
    await asyncio.sleep(0.05)  # the file does not exist yet
    write_records(log, [rec(1, b"one"), rec(2, b"two", flags=PARTIAL)])
    await asyncio.sleep(0.05)
    assert [d for d, _ in got] == [b"one"]
    write_records(log, [rec(3, b"-end"), rec(4, b"tail", flags=NO_EOL)])
    done.set()
    await asyncio.wait_for(reader, 5)
    assert [d for d, _ in got] == [b"one", b"two-end", b"tail"]
    # a forwarder restarting from the offset stored with "one" gets the rest, once
    resume = got[0][1]
    assert resume == 16 + 3
    got.clear()
    await asyncio.wait_for(consume(resume), 5)
    assert [d for d, _ in got] == [b"two-end", b"tail"]
