"""/metrics: Prometheus text for a viewer, nothing without a token."""

from __future__ import annotations

import httpx

from hatoba.logs.outputs.metrics import default_metrics
from tests.api.conftest import ClientFor


async def test_metrics_need_a_token_and_show_log_output_counters(
    root: httpx.AsyncClient, client_for: ClientFor
) -> None:
    assert (await client_for(None).get("/metrics")).status_code == 401
    default_metrics().dropped.labels(output="metrics-test", reason="buffer_full").inc(3)
    r = await root.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    line = 'hatoba_log_records_dropped_total{output="metrics-test",reason="buffer_full"}'
    assert any(row.startswith(line) and row.endswith(" 3.0") for row in r.text.splitlines())
