"""``open_source``: a validated ``MetricSpec`` -> a ready ``MetricSource``.

Nothing connects here: the first ``read`` does. A spec that cannot be completed (a
``passwordFromEnv`` variable that is not set, cpu/memory without a task stats provider)
opens a source whose every read fails with that reason, so it surfaces like any failed read.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from hatoba.model.clock import Clock, SystemClock
from hatoba.scalers.amqp import AmqpQueueSource, RabbitMqManagementSource
from hatoba.scalers.base import (
    FailingSource,
    MetricSource,
    Now,
    TaskStatsProvider,
    utcnow,
    with_password,
)
from hatoba.scalers.http import HttpJsonSource, PrometheusSource
from hatoba.scalers.poller import Poller
from hatoba.scalers.redis_sources import (
    CeleryRedisSource,
    RedisListSource,
    RedisStreamSource,
    RqSource,
    SidekiqSource,
)
from hatoba.scalers.spec import (
    AMQP_SCHEMES,
    CELERY_AMQP_SCHEMES,
    CelerySpec,
    CpuSpec,
    HttpSpec,
    MemorySpec,
    MetricSpec,
    PrometheusSpec,
    RabbitMqSpec,
    RedisListSpec,
    RedisStreamSpec,
    RqSpec,
    SidekiqSpec,
    SqlSpec,
    url_scheme,
)
from hatoba.scalers.sql import sql_source
from hatoba.scalers.tasks import TaskStatsSource


class _Unavailable(Exception):
    """Why a source cannot be opened; becomes a ``FailingSource``."""


def open_source(
    spec: MetricSpec,
    *,
    task_stats: TaskStatsProvider | None = None,
    env: Mapping[str, str] | None = None,
    now: Now = utcnow,
) -> MetricSource:
    """The source for ``spec`` (from ``parse_metric_spec``). ``env`` resolves
    ``passwordFromEnv``/``headersFromEnv`` (default: this process's environment)."""
    environ = os.environ if env is None else env
    try:
        return _open(spec, task_stats, environ, now)
    except _Unavailable as exc:
        return FailingSource(spec.kind, str(exc))


def _open(
    spec: MetricSpec,
    task_stats: TaskStatsProvider | None,
    env: Mapping[str, str],
    now: Now,
) -> MetricSource:
    s = spec.source
    timeout = spec.timeout
    if isinstance(s, CpuSpec | MemorySpec):
        if task_stats is None:
            raise _Unavailable(f"{spec.kind} metrics need the service's task stats (none given)")
        return TaskStatsSource(spec.kind, task_stats, now=now)
    if isinstance(s, HttpSpec | PrometheusSpec):
        url, secret = _url(s.url, s.password_from_env, env)
        headers = {**s.headers, **_headers_from_env(s.headers_from_env, env)}
        common: dict[str, Any] = {"headers": headers, "timeout": timeout, "now": now}
        common["secret"] = secret
        if isinstance(s, HttpSpec):
            return HttpJsonSource(url, s.json_path, **common)
        return PrometheusSource(url, s.query, s.empty_as_zero, **common)
    if isinstance(s, SqlSpec):
        url, secret = _url(s.url, s.password_from_env, env)
        return sql_source(url, s.query, timeout=timeout, secret=secret, now=now)
    if isinstance(s, RabbitMqSpec):
        url, secret = _url(s.url, s.password_from_env, env)
        if url_scheme(url) in AMQP_SCHEMES:
            return AmqpQueueSource(
                url, s.queue, kind="rabbitmq", timeout=timeout, secret=secret, now=now
            )
        vhost = s.vhost or "/"
        return RabbitMqManagementSource(
            url, s.queue, s.metric, vhost, timeout=timeout, secret=secret, now=now
        )
    if isinstance(s, CelerySpec):
        url, secret = _url(s.broker_url, s.password_from_env, env)
        if url_scheme(url) in CELERY_AMQP_SCHEMES:
            return AmqpQueueSource(
                url, s.queue, kind="celery", timeout=timeout, secret=secret, now=now
            )
        return CeleryRedisSource(url, s.queue, **_redis_kw(url, secret, timeout, now))
    return _open_redis(s, env, timeout, now)


def _open_redis(s: Any, env: Mapping[str, str], timeout: float, now: Now) -> MetricSource:
    url, secret = _url(s.url, s.password_from_env, env)
    kw = _redis_kw(url, secret, timeout, now)
    if isinstance(s, RedisListSpec):
        return RedisListSource(url, s.key, **kw)
    if isinstance(s, RedisStreamSpec):
        return RedisStreamSource(url, s.stream, s.group, s.metric, **kw)
    if isinstance(s, SidekiqSpec):
        return SidekiqSource(url, s.queue, s.metric, s.namespace, **kw)
    if isinstance(s, RqSpec):
        return RqSource(url, s.queue, s.metric, **kw)
    raise TypeError(f"no metric source for {type(s).__name__}")


def _redis_kw(url: str, secret: str | None, timeout: float, now: Now) -> dict[str, Any]:
    parts = urlsplit(url)
    where = f"unix:{parts.path}" if parts.scheme == "unix" else f"{parts.hostname}:{parts.port}"
    if parts.scheme != "unix" and parts.port is None:
        where = f"{parts.hostname}:6379"
    return {"target": f"redis {where}", "timeout": timeout, "secret": secret, "now": now}


def _url(url: str, password_env: str | None, env: Mapping[str, str]) -> tuple[str, str | None]:
    """The URL with its password filled in from the environment, and the password (to keep
    it out of error messages)."""
    if password_env is not None:
        password = env.get(password_env)
        if password is None:
            raise _Unavailable(f"environment variable {password_env} (passwordFromEnv) is not set")
        return with_password(url, password), password
    return url, urlsplit(url).password


def _headers_from_env(names: Mapping[str, str], env: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for header, var in names.items():
        value = env.get(var)
        if value is None:
            raise _Unavailable(f"environment variable {var} (headersFromEnv.{header}) is not set")
        out[header] = value
    return out


def open_poller(
    spec: MetricSpec,
    *,
    task_stats: TaskStatsProvider | None = None,
    env: Mapping[str, str] | None = None,
    clock: Clock | None = None,
    on_update: Callable[[Poller], None] | None = None,
) -> Poller:
    """``open_source`` plus a ``Poller`` with the spec's ``pollInterval`` and ``timeout``."""
    clock = clock or SystemClock()
    source = open_source(spec, task_stats=task_stats, env=env, now=clock.now)
    return Poller(
        source,
        interval=spec.poll_interval,
        timeout=spec.timeout,
        clock=clock,
        on_update=on_update,
    )
