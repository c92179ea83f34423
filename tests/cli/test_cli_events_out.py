"""Event lines for `service events` and `job events`."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from hatoba.cli.events_out import print_events
from hatoba.model.service import ServiceEvent


def test_text_and_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    event = ServiceEvent(
        service_name="web",
        created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        message="(service web) has reached a steady state.",
        id=7,
    )
    print_events([event], as_json=False)
    assert capsys.readouterr().out.rstrip().endswith("  (service web) has reached a steady state.")
    print_events([event], as_json=True)
    row = json.loads(capsys.readouterr().out)
    assert row["id"] == 7 and row["message"].endswith("steady state.")
