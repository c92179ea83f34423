"""Metric specs: valid shapes parse; bad ones name every bad field by JSON path."""

from __future__ import annotations

import pytest

from hatoba.model.errors import ValidationFailed
from hatoba.scalers import MetricError, MetricSpec, open_source, parse_metric_spec
from hatoba.scalers.base import FailingSource
from hatoba.scalers.spec import parse_json_path


def errors_of(spec: object, path: str = "metric") -> dict[str, str]:
    with pytest.raises(ValidationFailed) as info:
        parse_metric_spec(spec, path)  # type: ignore[arg-type]
    return {e.path: e.message for e in info.value.errors}


@pytest.mark.parametrize(
    ("spec", "kind"),
    [
        ({"redisList": {"url": "redis://h:6379/0", "key": "jobs"}}, "redisList"),
        ({"redisStream": {"url": "rediss://h", "stream": "s", "group": "g"}}, "redisStream"),
        ({"sidekiq": {"url": "redis://h", "metric": "latency", "namespace": "app"}}, "sidekiq"),
        ({"rq": {"url": "unix:///run/redis.sock", "queue": "high"}}, "rq"),
        ({"celery": {"brokerUrl": "pyamqp://guest@h//"}}, "celery"),
        ({"rabbitmq": {"url": "amqp://u:p@h/vh", "queue": "q"}}, "rabbitmq"),
        ({"rabbitmq": {"url": "http://h:15672", "queue": "q", "metric": "messages"}}, "rabbitmq"),
        ({"sql": {"url": "sqlite:///jobs.db", "query": "SELECT 1"}}, "sql"),
        ({"sql": {"url": "mysql+aiomysql://root@h/test", "query": "SELECT 1"}}, "sql"),
        ({"http": {"url": "https://h/stats", "jsonPath": "$.queue.depth"}}, "http"),
        (
            {"prometheus": {"url": "http://h:9090", "query": "up", "emptyAsZero": True}},
            "prometheus",
        ),
        ({"cpu": {}, "pollInterval": 0.5, "timeout": 2}, "cpu"),
        ({"memory": {}}, "memory"),
    ],
)
def test_valid_specs_parse(spec: dict[str, object], kind: str) -> None:
    parsed = parse_metric_spec(spec)
    assert parsed.kind == kind
    body = parsed.source.model_dump(mode="json", by_alias=True, exclude_unset=True)
    assert body == spec[kind]
    assert parsed.model_dump(mode="json", by_alias=True, exclude_unset=True) == spec


def test_defaults() -> None:
    spec = parse_metric_spec({"sidekiq": {"url": "redis://h"}})
    assert (spec.poll_interval, spec.timeout) == (1.0, 5.0)
    assert spec.sidekiq is not None
    assert (spec.sidekiq.queue, spec.sidekiq.metric) == ("default", "size")
    stream = parse_metric_spec({"redisStream": {"url": "redis://h", "stream": "s", "group": "g"}})
    assert stream.redis_stream is not None and stream.redis_stream.metric == "pending"


def test_errors_name_json_paths() -> None:
    errs = errors_of({"redisList": {"url": "http://h", "keyy": "x"}, "timeout": 0})
    assert errs["metric.redisList.url"].startswith("must be a URL starting with one of redis://")
    assert errs["metric.redisList.key"] == "Field required"
    assert errs["metric.redisList.keyy"] == "unknown field"
    assert "greater than 0" in errs["metric.timeout"]


def test_custom_root_path_and_nested_fields() -> None:
    errs = errors_of(
        {"http": {"url": "https://h", "jsonPath": "a..b", "headersFromEnv": {"X": "1BAD"}}},
        "policies[0].metric",
    )
    assert "cannot parse jsonPath" in errs["policies[0].metric.http.jsonPath"]
    assert "environment variable name" in errs["policies[0].metric.http.headersFromEnv"]


def test_exactly_one_kind() -> None:
    assert "needs one metric kind" in errors_of({})["metric"]
    both = errors_of({"cpu": {}, "memory": {}})
    assert both["metric"] == "has cpu and memory: exactly one metric kind is allowed"
    assert errors_of([1])["metric"] == "must be an object"
    assert errors_of({"kafka": {}})["metric.kafka"] == "unknown field"


def test_enum_and_protocol_checks() -> None:
    errs = errors_of(
        {"redisStream": {"url": "redis://h", "stream": "s", "group": "g", "metric": "x"}}
    )
    assert errs["metric.redisStream.metric"] == "Input should be 'pending' or 'lag'"
    errs = errors_of({"rabbitmq": {"url": "amqp://h", "queue": "q", "metric": "messages"}})
    assert "needs the management API" in errs["metric.rabbitmq"]
    errs = errors_of({"sql": {"url": "sqlite://", "query": "SELECT 1"}})
    assert "names no database file" in errs["metric.sql.url"]
    errs = errors_of({"sql": {"url": "oracle://h/x", "query": ""}})
    assert "sqlite://" in errs["metric.sql.url"]
    assert "at least 1 character" in errs["metric.sql.query"]
    errs = errors_of({"celery": {"brokerUrl": "redis://:bad port@h:xx"}})
    assert "not a valid URL" in errs["metric.celery.brokerUrl"]


@pytest.mark.parametrize(
    ("path", "parts"),
    [
        ("$.queue.depth", ("queue", "depth")),
        ("queue.depth", ("queue", "depth")),
        ("$.items[2].n", ("items", 2, "n")),
        ("$['a-b'].c", ("a-b", "c")),
        ("[0]", (0,)),
    ],
)
def test_json_paths(path: str, parts: tuple[object, ...]) -> None:
    assert parse_json_path(path) == parts


@pytest.mark.parametrize("path", ["$", "", "a..b", "a[x]", "a[0]b"])
def test_bad_json_paths(path: str) -> None:
    with pytest.raises(ValueError):
        parse_json_path(path)


async def test_missing_env_is_a_read_error_not_an_open_error() -> None:
    spec = parse_metric_spec(
        {"redisList": {"url": "redis://h", "key": "k", "passwordFromEnv": "PW"}}
    )
    source = open_source(spec, env={})
    assert isinstance(source, FailingSource)
    with pytest.raises(MetricError, match=r"PW \(passwordFromEnv\) is not set"):
        await source.read()
    cpu = open_source(parse_metric_spec({"cpu": {}}))
    with pytest.raises(MetricError, match="need the service's task stats"):
        await cpu.read()


def test_metric_spec_round_trip() -> None:
    spec = parse_metric_spec({"rq": {"url": "redis://h", "queue": "q"}, "pollInterval": 2})
    again = MetricSpec.model_validate(spec.wire())
    assert again == spec
