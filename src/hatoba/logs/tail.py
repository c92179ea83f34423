"""Tailing the files a container writes (its ``logFiles``) into record files, like Fluent
Bit's tail input, with nothing lost to rotation, restarts or the task's exit.

::

    app writes  logs/app.log ──poll (200 ms)──▶ FileTailer ──▶ files/app.log.log  (stream 3)
                                                     └──────▶ files/.tail-state.json
                                                              {name: path, dev, ino, offset,
                                                               records (record file size)}

- Each source file is followed by (device, inode) through an open descriptor: after a
  rename rotation (``app.log`` → ``app.log.1``, new ``app.log``) the old file is read to its
  end, then the new one from its start. A copytruncate rotation shows as the same inode
  getting shorter than the offset: reading restarts at 0. (Lines written between the last
  poll and a copytruncate are lost; that is copytruncate's own race, as in every tailer.)
- The state is saved after the records it accounts for are written and fdatasync'ed. A
  restarted control plane truncates each record file back to the size the state names and
  reads the source on from the saved offset, so every line is stored once, in order, even
  across ``kill -9``. If the source was rotated meanwhile, the old inode is looked for next
  to it (``app.log.1``) and read to its end first.
- ``drain()`` (the task's containers have exited) reads every file to its end, stores an
  unterminated last line with NO_EOL, fsyncs, and only then may the task be STOPPED.
- Files are read from their start when first seen: declare files the container writes.
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from hatoba.logs.records import FILE, NO_EOL, PARTIAL, LogRecord
from hatoba.logs.source import file_record_path

log = logging.getLogger("hatoba.logs.tail")
STATE_FILE = ".tail-state.json"
SEEN_KEPT = 100
READ_CHUNK = 4 * 1024 * 1024


@dataclass(frozen=True)
class TailSpec:
    """One declared ``logFiles`` entry, its path already absolute (may be a glob)."""

    pattern: str
    tag: str | None = None

    def name_for(self, path: str) -> str:
        """The source's name: its stream is ``file:<name>``."""
        base = os.path.basename(path)
        if not glob.has_magic(self.pattern):
            return self.tag or base
        return f"{self.tag}/{base}" if self.tag else base


@dataclass
class _Source:
    name: str
    path: str  # the name it is followed under
    dev: int = 0
    ino: int = 0
    pos: int = 0  # next byte to read from the open file
    pending: bytes = b""  # read, not yet stored: an unterminated line
    file: IO[bytes] | None = None
    records: IO[bytes] | None = None
    records_size: int = 0
    dirty: bool = False
    old: list[tuple[IO[bytes], int]] = field(default_factory=list)  # rotated away: (fd, pos)

    @property
    def offset(self) -> int:
        """Bytes of the current file stored as records (what a restart resumes from)."""
        return self.pos - len(self.pending)


class FileTailer:
    """Tails one container's declared files. Thread-safe: ``poll`` runs in a worker
    thread while ``drain`` may come from another."""

    def __init__(
        self,
        directory: Path,
        specs: Sequence[TailSpec],
        *,
        max_line: int = 1024 * 1024,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.directory = directory
        self.specs = list(specs)
        self.max_line = max_line
        self.clock = clock
        self._lock = threading.Lock()
        self._sources: dict[str, _Source] = {}
        self._owner: dict[str, str] = {}  # path -> source name
        self._saved: dict[str, dict[str, Any]] = {}
        self._seen: list[tuple[int, int]] = []  # inodes read to their end (rotated away)
        self._seen_mtime = 0
        self._loaded = False
        self._drained = False

    # -- state ------------------------------------------------------------------------
    def _load(self) -> None:
        self._loaded = True
        try:
            raw = json.loads((self.directory / STATE_FILE).read_text())
            self._saved = dict(raw.get("sources", {}))
            self._seen = [(int(d), int(i)) for d, i in raw.get("seen", [])]
            self._drained = bool(raw.get("drained", False))
        except (OSError, ValueError):
            self._saved = {}

    def _save(self) -> None:
        state = {
            name: {
                "path": s.path,
                "dev": s.dev,
                "ino": s.ino,
                "offset": s.offset,
                "records": s.records_size,
            }
            for name, s in self._sources.items()
        }
        seen = self._seen[-SEEN_KEPT:]
        data = json.dumps({"sources": state, "seen": seen, "drained": self._drained}).encode()
        tmp = self.directory / (STATE_FILE + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        try:
            os.write(fd, data)
            os.fdatasync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.directory / STATE_FILE)

    # -- discovery ----------------------------------------------------------------------
    def _discover(self) -> None:
        for spec in self.specs:
            if glob.has_magic(spec.pattern):
                paths = sorted(glob.glob(spec.pattern))
            else:
                paths = [spec.pattern] if os.path.exists(spec.pattern) else []
            for path in paths:
                if path in self._owner or not os.path.isfile(path) or self._rotated(path):
                    continue
                name = spec.name_for(path)
                base, n = name, 2
                while name in self._sources and self._sources[name].path != path:
                    name, n = f"{base}~{n}", n + 1
                self._owner[path] = name
                if name not in self._sources:
                    self._sources[name] = self._open_source(name, path)

    def _rotated(self, path: str) -> bool:
        """A file already read as another source, renamed by a rotation (``app.log.1``
        matched by ``app.log*``): not a new source."""
        try:
            st = os.stat(path)
        except OSError:
            return True
        key = (st.st_dev, st.st_ino)
        return key in self._seen or any((s.dev, s.ino) == key for s in self._sources.values())

    def _open_source(self, name: str, path: str) -> _Source:
        src = _Source(name, path)
        self.directory.mkdir(parents=True, exist_ok=True)
        rec_path = file_record_path(self.directory, name)
        saved = self._saved.get(name)
        fd = os.open(rec_path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o640)
        if saved is not None:  # drop records written after the state was saved
            os.ftruncate(fd, min(int(saved["records"]), os.fstat(fd).st_size))
        src.records = os.fdopen(fd, "ab")
        src.records_size = os.fstat(fd).st_size
        if saved is not None and saved.get("path") == path:
            dev, ino, offset = int(saved["dev"]), int(saved["ino"]), int(saved["offset"])
            self._resume(src, dev, ino, offset)
        return src

    def _resume(self, src: _Source, dev: int, ino: int, offset: int) -> None:
        """Pick up where the saved state left off, across a rotation that happened while
        nobody was reading (the old inode is looked for next to the path)."""
        try:
            st = os.stat(src.path)
        except OSError:
            st = None
        if st is not None and (st.st_dev, st.st_ino) == (dev, ino):
            src.dev, src.ino = dev, ino
            src.pos = offset if st.st_size >= offset else 0
            return
        rotated = _find_inode(os.path.dirname(src.path) or ".", dev, ino)
        if rotated is None:
            log.warning("%s: rotated while not tailed and the old file is gone", src.path)
            return
        with contextlib.suppress(OSError):
            src.old.append((open(rotated, "rb"), offset))  # noqa: SIM115 - closed when read

    # -- reading --------------------------------------------------------------------------
    def poll(self) -> int:
        """One pass over every file: new lines stored, state saved. Returns bytes read."""
        with self._lock:
            if not self._loaded:
                self._load()
            if self._drained:
                return 0
            return self._poll()

    def _poll(self, *, whole: bool = False) -> int:
        self._discover()
        total = 0
        for src in self._sources.values():
            total += self._follow(src, whole)
        self._commit()
        return total

    def _follow(self, src: _Source, whole: bool) -> int:
        total = 0
        rotated_at: int | None = None  # the mtime of a generation just finished
        while src.old:  # a rotated-away file: to its end first
            f, pos = src.old.pop(0)
            total += self._finish(src, f, pos)
            rotated_at = self._seen_mtime
            src.pos = 0
        try:
            st = os.stat(src.path)
        except OSError:
            st = None
        if src.file is not None and st is not None and (st.st_dev, st.st_ino) != (src.dev, src.ino):
            total += self._finish(src, src.file, src.pos)  # renamed away: finish it
            rotated_at = self._seen_mtime
            src.file, src.pos = None, 0
        if rotated_at is not None and st is not None:
            # rotated more than once since the last look: the generations in between
            for path in _generations(src.path, rotated_at, self._known(st)):
                with contextlib.suppress(OSError), open(path, "rb") as f:
                    total += self._finish(src, f, 0)
        if src.file is None:
            if st is None:
                return total
            try:
                src.file = open(src.path, "rb")  # noqa: SIM115 - kept open to follow renames
            except OSError as exc:
                log.warning("cannot read %s: %s", src.path, exc)
                return total
            fst = os.fstat(src.file.fileno())
            if (fst.st_dev, fst.st_ino) != (src.dev, src.ino):
                src.dev, src.ino = fst.st_dev, fst.st_ino
                if src.pos and fst.st_size < src.pos:
                    src.pos = 0
        size = os.fstat(src.file.fileno()).st_size
        if size < src.pos:  # copytruncate
            self._end_line(src)
            src.pos = 0
        return total + self._read_file(src, src.file, src.pos, whole=whole)

    def _finish(self, src: _Source, f: IO[bytes], pos: int) -> int:
        """Read a rotated-away generation to its end; it is never read again."""
        n = self._read_file(src, f, pos, whole=True)
        self._end_line(src)
        fst = os.fstat(f.fileno())
        self._seen.append((fst.st_dev, fst.st_ino))
        self._seen_mtime = fst.st_mtime_ns
        f.close()
        return n

    def _known(self, current: os.stat_result) -> set[tuple[int, int]]:
        known = {(current.st_dev, current.st_ino), *self._seen}
        return known | {(s.dev, s.ino) for s in self._sources.values()}

    def _read_file(self, src: _Source, f: IO[bytes], pos: int, *, whole: bool) -> int:
        """Read from ``pos`` (to the end when ``whole``, else one chunk) into records."""
        total = 0
        f.seek(pos)
        while True:
            data = f.read(READ_CHUNK)
            if not data:
                break
            total += len(data)
            pos += len(data)
            if f is src.file:
                src.pos = pos
            self._lines(src, data)
            if not whole:
                break
        return total

    def _lines(self, src: _Source, data: bytes) -> None:
        now = self.clock()
        buf = src.pending + data
        start = 0
        out: list[bytes] = []
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            line = buf[start:nl]
            while len(line) > self.max_line:
                out.append(LogRecord(now, FILE, line[: self.max_line], PARTIAL).encode())
                line = line[self.max_line :]
            out.append(LogRecord(now, FILE, line, 0).encode())
            start = nl + 1
        rest = buf[start:]
        while len(rest) > self.max_line:  # an overlong line still being written
            out.append(LogRecord(now, FILE, rest[: self.max_line], PARTIAL).encode())
            rest = rest[self.max_line :]
        src.pending = rest
        self._write(src, b"".join(out))

    def _end_line(self, src: _Source) -> None:
        """The file ended without a newline: store what is pending as the last line."""
        if src.pending:
            self._write(src, LogRecord(self.clock(), FILE, src.pending, NO_EOL).encode())
            src.pending = b""

    def _write(self, src: _Source, data: bytes) -> None:
        if data and src.records is not None:
            src.records.write(data)
            src.records_size += len(data)
            src.dirty = True

    def _commit(self) -> None:
        """Records first (flushed, fdatasync'ed), then the state that accounts for them."""
        dirty = [s for s in self._sources.values() if s.dirty]
        for src in dirty:
            assert src.records is not None
            src.records.flush()
            os.fdatasync(src.records.fileno())
            src.dirty = False
        if dirty or self._drained:
            self._save()

    def drain(self) -> None:
        """The containers have exited: read every file to its end, store unterminated last
        lines, make it all durable. Later polls do nothing."""
        with self._lock:
            if not self._loaded:
                self._load()
            if self._drained:
                return
            self._poll(whole=True)
            for src in self._sources.values():
                self._end_line(src)
            self._drained = True
            self._commit()
            with contextlib.suppress(OSError):
                dfd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
                os.fsync(dfd)
                os.close(dfd)
            self._close()

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        for src in self._sources.values():
            for f in (src.file, src.records, *(o[0] for o in src.old)):
                if f is not None:
                    f.close()
            src.file = src.records = None
            src.old.clear()


COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".zip", ".lz4")


def _generations(path: str, after_ns: int, known: set[tuple[int, int]]) -> list[str]:
    """Rotated generations of ``path`` (``app.log.1``, ``app.log-2024...``) not read yet and
    written since ``after_ns``, oldest first: a file rotated twice between two polls."""
    directory, base = os.path.dirname(path) or ".", os.path.basename(path)
    found: list[tuple[int, str]] = []
    with contextlib.suppress(OSError), os.scandir(directory) as entries:
        for entry in entries:
            if entry.name == base or not entry.name.startswith(base):
                continue
            if entry.name.endswith(COMPRESSED) or not entry.is_file(follow_symlinks=False):
                continue
            with contextlib.suppress(OSError):
                st = entry.stat(follow_symlinks=False)
                if (st.st_dev, st.st_ino) not in known and st.st_mtime_ns >= after_ns:
                    found.append((st.st_mtime_ns, entry.path))
    return [p for _, p in sorted(found)]


def _find_inode(directory: str, dev: int, ino: int) -> str | None:
    with contextlib.suppress(OSError), os.scandir(directory) as entries:
        for entry in entries:
            with contextlib.suppress(OSError):
                st = entry.stat(follow_symlinks=False)
                if (st.st_dev, st.st_ino) == (dev, ino) and entry.is_file():
                    return entry.path
    return None
