"""FileTailer: lines of files a container writes become records, through rotation,
truncation, restarts of the control plane and the task's exit."""

from __future__ import annotations

import os
from pathlib import Path

from hatoba.logs.reader import ReadOptions, RecordCursor
from hatoba.logs.records import FILE, NO_EOL
from hatoba.logs.source import file_record_path
from hatoba.logs.tail import STATE_FILE, FileTailer, TailSpec


def stored(directory: Path, name: str, raw: bool = False) -> list[bytes]:
    cursor = RecordCursor(file_record_path(directory, name), options=ReadOptions(raw=raw))
    records = [r for r, _ in cursor.read_all() + cursor.finish()]
    assert all(r.stream == FILE for r in records)
    return [r.data for r in records]


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as f:
        f.write(data)


def test_lines_partial_lines_and_drain(tmp_path: Path) -> None:
    app, out = tmp_path / "app.log", tmp_path / "files"
    t = FileTailer(out, [TailSpec(str(app))])
    assert t.poll() == 0  # not there yet
    append(app, b"one\ntw")
    t.poll()
    assert stored(out, "app.log") == [b"one"]
    append(app, b"o\nthree")
    t.poll()
    assert stored(out, "app.log") == [b"one", b"two"]
    append(app, b"!")
    t.drain()
    cursor = RecordCursor(file_record_path(out, "app.log"))
    last = cursor.read_all()[-1][0]
    assert (last.data, last.flags) == (b"three!", NO_EOL)
    append(app, b"after the end\n")
    assert t.poll() == 0  # drained: done for good, also for a new tailer on the same state
    FileTailer(out, [TailSpec(str(app))]).poll()
    assert stored(out, "app.log")[-1] == b"three!"


def test_rename_rotation_reads_the_old_file_to_its_end(tmp_path: Path) -> None:
    app, out = tmp_path / "app.log", tmp_path / "files"
    t = FileTailer(out, [TailSpec(str(app))])
    append(app, b"1\n2\n")
    t.poll()
    append(app, b"3\n")  # written before the rotation, not yet read
    os.rename(app, tmp_path / "app.log.1")
    append(app, b"4\n")
    t.poll()
    append(app, b"5\n")
    t.drain()
    assert stored(out, "app.log") == [b"1", b"2", b"3", b"4", b"5"]


def test_two_rotations_between_polls_lose_no_generation(tmp_path: Path) -> None:
    app, out = tmp_path / "app.log", tmp_path / "files"
    append(tmp_path / "app.log.9", b"a previous run's file, never read\n")
    t = FileTailer(out, [TailSpec(str(app))])
    append(app, b"1\n")
    t.poll()
    append(app, b"2\n")
    os.rename(app, tmp_path / "app.log.1")
    append(app, b"3\n")
    os.rename(tmp_path / "app.log.1", tmp_path / "app.log.2")
    os.rename(app, tmp_path / "app.log.1")
    append(app, b"4\n")
    t.drain()
    assert stored(out, "app.log") == [b"1", b"2", b"3", b"4"]


def test_copytruncate_starts_again_at_zero(tmp_path: Path) -> None:
    app, out = tmp_path / "app.log", tmp_path / "files"
    t = FileTailer(out, [TailSpec(str(app))])
    append(app, b"old line one\nold line two\n")
    t.poll()
    with app.open("r+b") as f:
        f.truncate(0)
    append(app, b"new\n")
    t.drain()
    assert stored(out, "app.log") == [b"old line one", b"old line two", b"new"]


def test_restart_resumes_exactly_once(tmp_path: Path) -> None:
    app, out = tmp_path / "app.log", tmp_path / "files"
    first = FileTailer(out, [TailSpec(str(app))])
    append(app, b"a\nb\n")
    first.poll()
    # killed after writing records whose state it never saved: they are dropped and re-read
    append(file_record_path(out, "app.log"), b"\x00" * 7)
    append(app, b"c\n")
    second = FileTailer(out, [TailSpec(str(app))])
    append(app, b"d\n")
    second.drain()
    assert stored(out, "app.log") == [b"a", b"b", b"c", b"d"]


def test_rotation_while_nobody_tails_is_found_next_to_the_file(tmp_path: Path) -> None:
    app, out = tmp_path / "app.log", tmp_path / "files"
    FileTailer(out, [TailSpec(str(app))]).poll()
    append(app, b"1\n")
    first = FileTailer(out, [TailSpec(str(app))])
    first.poll()
    append(app, b"2\n")
    os.rename(app, tmp_path / "app.log.1")  # the control plane is down meanwhile
    append(app, b"3\n")
    FileTailer(out, [TailSpec(str(app))]).drain()
    assert stored(out, "app.log") == [b"1", b"2", b"3"]


def test_globs_name_sources_and_skip_rotated_names(tmp_path: Path) -> None:
    out = tmp_path / "files"
    (tmp_path / "logs").mkdir()
    a, b = tmp_path / "logs" / "a.log", tmp_path / "logs" / "b.log"
    append(a, b"from a\n")
    append(b, b"from b\n")
    t = FileTailer(out, [TailSpec(str(tmp_path / "logs" / "*.log*"), tag="web")])
    t.poll()
    os.rename(a, tmp_path / "logs" / "a.log.1")  # matches the glob: must not be read twice
    append(a, b"a again\n")
    t.drain()
    assert stored(out, "web/a.log") == [b"from a", b"a again"]
    assert stored(out, "web/b.log") == [b"from b"]
    names = sorted(os.listdir(out))
    assert names == [STATE_FILE, "web%2Fa.log.log", "web%2Fb.log.log"]


def test_overlong_lines_become_partials_that_readers_join(tmp_path: Path) -> None:
    app, out = tmp_path / "app.log", tmp_path / "files"
    t = FileTailer(out, [TailSpec(str(app), tag="big")], max_line=10)
    line = bytes(range(256)).replace(b"\n", b"") * 3
    append(app, line + b"\nshort\n")
    t.drain()
    assert stored(out, "big") == [line, b"short"]
    raw = stored(out, "big", raw=True)
    assert len(raw) == -(-len(line) // 10) + 1 and all(len(r) <= 10 for r in raw)
