"""Helpers for output tests: record files written as the shim writes them, workers over
them, and waiting for conditions."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from hatoba.logs.buffer import OutputBuffer
from hatoba.logs.outputs.events import SourceMeta
from hatoba.logs.outputs.factory import build_output
from hatoba.logs.outputs.metrics import OutputMetrics
from hatoba.logs.outputs.worker import DropNotice, OutputWorker, WorkerSettings
from hatoba.logs.records import PARTIAL, STDERR, STDOUT, LogRecord
from hatoba.model.log_outputs import OUTPUT_SPEC

T0 = 1_700_000_000_000_000_000


def write_lines(
    path: Path, lines: list[bytes], *, stream: int = STDOUT, t0: int = T0, max_line: int = 0
) -> None:
    """Append ``lines`` as records, each cut into PARTIAL pieces of ``max_line`` bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as f:
        for i, line in enumerate(lines):
            ts = t0 + i * 1000
            pieces = [line]
            if max_line:
                pieces = [line[j : j + max_line] for j in range(0, len(line), max_line)] or [b""]
            for k, piece in enumerate(pieces):
                flags = PARTIAL if k < len(pieces) - 1 else 0
                f.write(LogRecord(ts, stream, piece, flags).encode())


def numbered(n: int, prefix: str = "line", start: int = 0) -> list[bytes]:
    return [f"{prefix} {i:06d}".encode() for i in range(start, start + n)]


def meta(task_id: str = "t1", container: str = "app", **kw: Any) -> SourceMeta:
    return SourceMeta(task_id, container, kw.pop("family", "web"), "1", node="n1", **kw)


def spec(**data: Any) -> Any:
    data.setdefault("name", "out")
    return OUTPUT_SPEC.validate_python(data)


def forward_spec(*addresses: str, **data: Any) -> Any:
    nodes = []
    for a in addresses:
        host, _, port = a.rpartition(":")
        nodes.append({"host": host, "port": int(port)})
    data.setdefault("retryMin", 0.05)
    data.setdefault("retryMax", 0.2)
    data.setdefault("ackTimeout", 2.0)
    return spec(type="forward", nodes=nodes, **data)


class Harness:
    """A worker over an output, its buffer in ``state_dir``, metrics in their own registry."""

    def __init__(self, output_spec: Any, state_dir: Path, limit: int = 1 << 30) -> None:
        self.spec = output_spec
        self.registry = CollectorRegistry()
        self.metrics = OutputMetrics(self.registry)
        self.notices: list[DropNotice] = []
        self.buffer = OutputBuffer.load(state_dir, limit)
        self.worker = OutputWorker(
            build_output(output_spec),
            self.buffer,
            self.metrics,
            WorkerSettings(
                chunk_records=output_spec.chunk_records,
                chunk_bytes=output_spec.chunk_bytes,
                retry_min=output_spec.retry_min,
                retry_max=output_spec.retry_max,
                poll_interval=0.02,
            ),
            on_drop=self._on_drop,
        )

    def add(self, source: SourceMeta, path: Path) -> None:
        """A new source, saved (as the shipper does)."""
        assert self.buffer.add(source, path)
        self.buffer.write(self.buffer.snapshot())

    async def _on_drop(self, notice: DropNotice) -> None:
        self.notices.append(notice)

    def metric(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(name, {"output": self.spec.name, **labels})
        return value or 0.0

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[OutputWorker]:
        task = asyncio.create_task(self.worker.run())
        try:
            yield self.worker
        finally:
            self.worker.stop()
            try:
                await asyncio.wait_for(task, 5)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


async def wait_until(cond: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or cond}")
        await asyncio.sleep(0.01)


__all__ = ["STDERR", "STDOUT"]
