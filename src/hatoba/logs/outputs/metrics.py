"""Prometheus metrics of the log outputs, in prometheus-client's default registry (whoever
serves ``/metrics`` exposes them with ``prometheus_client.generate_latest()``).

- ``hatoba_log_records_dropped_total{output, reason}``: records an output will never get;
  ``reason`` is ``buffer_full`` (its backlog passed the buffer limit: oldest first) or
  ``rejected`` (the receiver refused them for good, e.g. HTTP 4xx)
- ``hatoba_log_records_forwarded_total{output}``: records delivered (acked, 2xx, fsynced)
- ``hatoba_log_output_failures_total{output}``: failed delivery attempts
- ``hatoba_log_buffer_bytes{output}``: bytes of task logs the output still owes
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge


class OutputMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.dropped = Counter(
            "hatoba_log_records_dropped_total",
            "Log records a log output dropped (buffer limit exceeded, or rejected)",
            ["output", "reason"],
            registry=registry,
        )
        self.forwarded = Counter(
            "hatoba_log_records_forwarded_total",
            "Log records a log output delivered",
            ["output"],
            registry=registry,
        )
        self.failures = Counter(
            "hatoba_log_output_failures_total",
            "Failed delivery attempts of a log output",
            ["output"],
            registry=registry,
        )
        self.buffer_bytes = Gauge(
            "hatoba_log_buffer_bytes",
            "Bytes of task logs a log output has not delivered yet",
            ["output"],
            registry=registry,
        )


_default: OutputMetrics | None = None


def default_metrics() -> OutputMetrics:
    """The process's metrics (created once: a registry refuses a second copy)."""
    global _default
    if _default is None:
        _default = OutputMetrics()
    return _default
