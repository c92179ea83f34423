"""The contract between an ``OutputWorker`` and an output (forward, http, file)."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Protocol

from hatoba.logs.outputs.events import LogEvent


class OutputUnavailable(Exception):
    """Nothing was delivered for sure; try the same batch again later.

    ``retry_after``: when the output knows (its nodes' back-off), seconds to wait."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class OutputRejected(Exception):
    """The receiver refused the batch for good (e.g. HTTP 400): retrying cannot help."""


@dataclass(frozen=True)
class Batch:
    """Events to deliver together. ``chunk_id`` is the same every time the same ranges of the
    same files are sent, so a receiver can drop a copy it already has."""

    events: list[LogEvent]
    chunk_id: str

    @staticmethod
    def make_id(output: str, ranges: list[tuple[str, int, int]]) -> str:
        h = hashlib.blake2b(digest_size=16)
        h.update(output.encode())
        for key, start, end in ranges:
            h.update(f"\0{key}\0{start}\0{end}".encode())
        return base64.b64encode(h.digest()).decode("ascii")


class Output(Protocol):
    name: str

    async def send(self, batch: Batch) -> None:
        """Return once the batch is delivered (acknowledged, 2xx, fsynced).

        Raises ``OutputUnavailable`` (retry) or ``OutputRejected`` (drop)."""
        ...

    async def close(self) -> None: ...
