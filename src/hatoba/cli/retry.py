"""Backoff between RunTask retries when placement fails (e.g. ``RESOURCE:MEMORY``).

Exponential backoff with full jitter (AWS's recommendation): many CLIs retrying at once
against a full node spread out instead of stampeding in lockstep. Pure, so it is testable.
"""

from __future__ import annotations

import random

BASE_SECONDS = 1.0
CAP_SECONDS = 30.0


def backoff_ceiling(attempt: int, base: float = BASE_SECONDS, cap: float = CAP_SECONDS) -> float:
    """The most we may wait before retry number ``attempt`` (0-based): min(cap, base * 2^n)."""
    if attempt < 0:
        raise ValueError("attempt must be >= 0")
    # Avoid float overflow for silly attempt numbers: 2**64 s is already far past any cap.
    return min(cap, base * 2.0 ** min(attempt, 64))


def backoff_delay(
    attempt: int,
    rng: random.Random | None = None,
    base: float = BASE_SECONDS,
    cap: float = CAP_SECONDS,
) -> float:
    """Full jitter: uniform in [0, backoff_ceiling(attempt)]."""
    return (rng or random).uniform(0.0, backoff_ceiling(attempt, base, cap))
