"""Backoff for RunTask placement retries: exponential, capped, full jitter."""

from __future__ import annotations

import random

import pytest

from hatoba.cli.retry import backoff_ceiling, backoff_delay


def test_ceiling_doubles_from_one_second_up_to_the_cap() -> None:
    assert [backoff_ceiling(n) for n in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert backoff_ceiling(10_000) == 30


def test_delay_is_full_jitter_within_the_ceiling() -> None:
    rng = random.Random(7)
    for attempt in range(8):
        delays = [backoff_delay(attempt, rng) for _ in range(200)]
        assert all(0 <= d <= backoff_ceiling(attempt) for d in delays)
        # full jitter spreads over the whole range, not only near the ceiling
        assert min(delays) < backoff_ceiling(attempt) * 0.2
        assert max(delays) > backoff_ceiling(attempt) * 0.8


def test_negative_attempt_is_a_bug() -> None:
    with pytest.raises(ValueError):
        backoff_ceiling(-1)
