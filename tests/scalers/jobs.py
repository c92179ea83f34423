"""Job functions that RQ enqueues by import path (``tests.scalers.jobs.add``)."""

from __future__ import annotations


def add(a: int, b: int) -> int:
    return a + b
