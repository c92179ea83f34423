"""Metric sources for autoscaling: queue backlogs (Redis, Sidekiq, RQ, Celery, RabbitMQ),
SQL counts, HTTP JSON values, Prometheus queries, and per-task CPU/memory.

The controller parses a spec (``parse_metric_spec``), opens a source (``open_source``) and
polls it (``Poller``, or ``open_poller`` for both). See README.md.
"""

from hatoba.scalers.base import (
    MetricError,
    MetricReading,
    MetricSource,
    ResultError,
    TaskStatsProvider,
    TaskUsage,
)
from hatoba.scalers.factory import open_poller, open_source
from hatoba.scalers.poller import Poller
from hatoba.scalers.spec import KINDS, MetricSpec, parse_metric_spec
from hatoba.scalers.tasks import ProcessTaskStats

__all__ = [
    "KINDS",
    "MetricError",
    "MetricReading",
    "MetricSource",
    "MetricSpec",
    "Poller",
    "ProcessTaskStats",
    "ResultError",
    "TaskStatsProvider",
    "TaskUsage",
    "open_poller",
    "open_source",
    "parse_metric_spec",
]
