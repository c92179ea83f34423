"""File output: JSON lines appended to ``path`` (a template: one file per family, say),
fsynced once per batch, rotated by size: ``app.log`` -> ``app.log.1`` -> ... -> ``.N``
(``rotateKeep``; the oldest is deleted)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from hatoba.logs.outputs.base import Batch, OutputUnavailable
from hatoba.logs.outputs.events import json_line
from hatoba.model.log_outputs import FileOutput, render


def rotate(path: Path, keep: int) -> None:
    """``path`` -> ``path.1``, ``path.1`` -> ``path.2``, ...; at most ``keep`` old files."""
    if keep == 0:
        path.unlink(missing_ok=True)
        return
    for i in range(keep - 1, 0, -1):
        older = path.with_name(f"{path.name}.{i}")
        if older.exists():
            older.replace(path.with_name(f"{path.name}.{i + 1}"))
    path.replace(path.with_name(f"{path.name}.1"))


def append(path: Path, data: bytes, rotate_bytes: int, keep: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        size = 0
    if size and rotate_bytes and size + len(data) > rotate_bytes:
        rotate(path, keep)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


class FileWriter:
    def __init__(self, spec: FileOutput) -> None:
        self.spec = spec
        self.name = spec.name

    def _write(self, batch: Batch) -> None:
        by_path: dict[str, list[bytes]] = {}
        for event in batch.events:
            path = render(self.spec.path, event.source.template_values())
            by_path.setdefault(path, []).append(json_line(event))
        for path, lines in by_path.items():
            append(Path(path), b"".join(lines), self.spec.rotate_bytes, self.spec.rotate_keep)

    async def send(self, batch: Batch) -> None:
        try:
            await asyncio.to_thread(self._write, batch)
        except OSError as exc:
            raise OutputUnavailable(f"{self.spec.path}: {exc}") from exc

    async def close(self) -> None:
        return None
