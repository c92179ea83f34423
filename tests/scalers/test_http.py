"""HTTP JSON values and Prometheus instant queries against a real local HTTP server (a
stand-in answering in Prometheus's own JSON format: there is no Prometheus server here)."""

from __future__ import annotations

import pytest

from hatoba.scalers import MetricError, open_source, parse_metric_spec
from tests.scalers.conftest import Opener, Routes, free_port

Server = tuple[str, Routes]


async def test_http_json_value(http_server: Server, opened: Opener) -> None:
    base, routes = http_server
    routes.json("/stats", {"queue": {"depth": 42, "byName": [{"n": "7.5"}]}, "ok": True})
    depth = opened({"http": {"url": f"{base}/stats", "jsonPath": "$.queue.depth"}})
    assert (await depth.read()).value == 42
    nested = opened({"http": {"url": f"{base}/stats", "jsonPath": "queue.byName[0].n"}})
    assert (await nested.read()).value == 7.5  # a numeric string counts
    routes.json("/stats", {"queue": {"depth": 3}})
    assert (await depth.read()).value == 3  # read again on every poll


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("$.queue.size", r"jsonPath \$.queue.size: \$.queue has no field 'size'"),
        ("$.queue.depth.x", r"\$.queue.depth is int, not an object"),
        ("$.list[3]", r"\$.list is a list of 1, no index \[3\]"),
        ("$.ok", "value is bool True, not a number"),
        ("$.name", "value is str 'x', not a number"),
    ],
)
async def test_http_json_path_problems(path, problem, http_server: Server, opened: Opener):
    base, routes = http_server
    routes.json("/s", {"queue": {"depth": 1}, "list": [1], "ok": True, "name": "x"})
    source = opened({"http": {"url": f"{base}/s", "jsonPath": path}})
    with pytest.raises(MetricError, match=problem):
        await source.read()


async def test_http_status_and_body_errors(http_server: Server, opened: Opener) -> None:
    base, routes = http_server
    routes.text("/down", "upstream down", status=503)
    routes.text("/html", "<html>hi</html>")
    down = opened({"http": {"url": f"{base}/down", "jsonPath": "a"}})
    with pytest.raises(MetricError, match=r"HTTP 503 from .*/down: upstream down"):
        await down.read()
    html = opened({"http": {"url": f"{base}/html", "jsonPath": "a"}})
    with pytest.raises(MetricError, match=r"HTTP 200 from .*/html is not JSON"):
        await html.read()


async def test_http_headers_and_basic_auth_from_env(http_server: Server) -> None:
    base, routes = http_server
    routes.json("/s", {"n": 1})
    spec = parse_metric_spec(
        {
            "http": {
                "url": f"{base.replace('http://', 'http://ops@')}/s",
                "jsonPath": "n",
                "headers": {"X-Team": "infra"},
                "headersFromEnv": {"X-Token": "STATS_TOKEN"},
                "passwordFromEnv": "STATS_PW",
            }
        }
    )
    source = open_source(spec, env={"STATS_TOKEN": "t0k", "STATS_PW": "pa ss"})
    try:
        assert (await source.read()).value == 1
    finally:
        await source.close()
    headers = routes.requests[-1][1]
    assert headers["X-Team"] == "infra" and headers["X-Token"] == "t0k"
    assert headers["Authorization"] == "Basic b3BzOnBhIHNz"  # ops:pa ss


async def test_http_unreachable(opened: Opener) -> None:
    url = f"http://127.0.0.1:{free_port()}/stats"
    source = opened({"http": {"url": url, "jsonPath": "a"}})
    with pytest.raises(MetricError, match=r"cannot connect|connection refused|failed"):
        await source.read()


def vector(*values: str) -> dict[str, object]:
    result = [
        {"metric": {"queue": f"q{i}"}, "value": [1767225600.123, v]} for i, v in enumerate(values)
    ]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


QUERY = 'sum(rabbitmq_queue_messages{queue="jobs"})'
QUERY_PATH = "/api/v1/query?query=sum%28rabbitmq_queue_messages%7Bqueue%3D%22jobs%22%7D%29"


async def test_prometheus_one_sample(http_server: Server, opened: Opener) -> None:
    base, routes = http_server
    routes.json(QUERY_PATH, vector("17"))
    source = opened({"prometheus": {"url": base + "/", "query": QUERY}})
    reading = await source.read()
    assert reading.value == 17 and reading.detail == {"samples": 1}
    routes.json(
        QUERY_PATH, {"status": "success", "data": {"resultType": "scalar", "result": [1, "2.5"]}}
    )
    assert (await source.read()).value == 2.5


async def test_prometheus_empty_result(http_server: Server, opened: Opener) -> None:
    base, routes = http_server
    routes.json(QUERY_PATH, vector())
    strict = opened({"prometheus": {"url": base, "query": QUERY}})
    with pytest.raises(MetricError, match=r"returned no samples .set emptyAsZero"):
        await strict.read()
    lenient = opened({"prometheus": {"url": base, "query": QUERY, "emptyAsZero": True}})
    reading = await lenient.read()
    assert reading.value == 0 and reading.detail == {"samples": 0}


@pytest.mark.parametrize(
    ("answer", "status", "problem"),
    [
        (vector("1", "2"), 200, r"returned 2 series; it must return one \(aggregate it"),
        (vector("NaN"), 200, "is nan, not a finite number"),
        (
            {"status": "error", "errorType": "bad_data", "error": "parse error at char 4"},
            400,
            "prometheus query failed: bad_data: parse error at char 4",
        ),
        (
            {"status": "success", "data": {"resultType": "matrix", "result": []}},
            200,
            "returned a matrix",
        ),
    ],
)
async def test_prometheus_problems(answer, status, problem, http_server: Server, opened: Opener):
    base, routes = http_server
    routes.json(QUERY_PATH, answer, status=status)
    source = opened({"prometheus": {"url": base, "query": QUERY}})
    with pytest.raises(MetricError, match=problem):
        await source.read()
