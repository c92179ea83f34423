"""What ``hatoba scaling ...`` prints for people: the describe panel, activity and target
tables, and ``watch``'s live chart (block characters drawn with rich, no plotting library:
a bar chart per policy metric and the desired and running counts, over a time window)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from hatoba.cli.render import when
from hatoba.model.scaling import (
    ActivityStatus,
    ScalableTarget,
    ScalingActivity,
    ScalingPolicy,
)
from hatoba.model.scaling_view import LoopRole, ScalingDescription

EIGHTHS = " ▁▂▃▄▅▆▇█"
LABEL = 16  # columns before a chart: a series' name and value
MAX_CHART = 120  # columns of a chart at most (a wide terminal gets a wider time slice each)
_META_KEYS = ("pollInterval", "timeout")


def _cells(table: Table, *cells: str | Text) -> None:
    """User data (queries, reasons) is never read as markup."""
    table.add_row(*(c if isinstance(c, Text) else Text(c) for c in cells))


def _num(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:g}" if abs(value) < 1e6 else f"{value:.3g}"


def _no_password(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def metric_text(metric: dict[str, Any]) -> str:
    """``redisList redis://127.0.0.1:6379/0 jobs``: the kind and its settings, passwords
    masked."""
    kinds = [k for k in metric if k not in _META_KEYS]
    if not kinds:
        return "?"
    kind = kinds[0]
    spec = metric.get(kind)
    if not isinstance(spec, dict) or not spec:
        return kind
    shown = []
    for key, value in spec.items():
        if key.endswith("FromEnv") or key == "headers":
            continue
        text = _no_password(str(value)) if key in ("url", "brokerUrl") else str(value)
        shown.append(text if key in ("url", "brokerUrl", "query", "key") else f"{key}={text}")
    return " ".join([kind, *shown])


def target_text(t: ScalableTarget) -> str:
    s = t.suspended_state
    suspended = [
        name
        for name, on in (
            ("scale-in", s.dynamic_scaling_in_suspended),
            ("scale-out", s.dynamic_scaling_out_suspended),
            ("scheduled", s.scheduled_scaling_suspended),
        )
        if on
    ]
    text = f"min {t.min_capacity}, max {t.max_capacity}"
    if suspended:
        text += f"; suspended: {', '.join(suspended)}"
    if t.min_capacity == 0:
        text += f"; scale-to-zero cooldown {t.scale_to_zero_cooldown_seconds}s"
    return text


def _goal(p: ScalingPolicy) -> str:
    tt, step = p.target_tracking_configuration, p.step_scaling_configuration
    if tt is not None:
        unit = "per task" if tt.metric_type.value == "AverageValue" else "(Value)"
        extra = f", in after {tt.scale_in_stabilization_seconds}s"
        if tt.disable_scale_in:
            extra = ", no scale-in"
        return f"{tt.target_value:g} {unit}{extra}"
    if step is not None:
        op = {"GreaterThanOrEqualToThreshold": ">=", "GreaterThanThreshold": ">"}
        op |= {"LessThanThreshold": "<", "LessThanOrEqualToThreshold": "<="}
        return (
            f"{op[step.comparison_operator.value]} {step.threshold:g}: "
            f"{len(step.step_adjustments)} steps, {step.adjustment_type.value}"
        )
    return ""


def policy_table(d: ScalingDescription) -> Table:
    table = Table(box=None, header_style="bold")
    for col in ("POLICY", "TYPE", "METRIC", "TARGET", "NOW", "READ AT", "ERROR"):
        table.add_column(col)
    for p in d.policies:
        m = d.metrics.get(p.policy_name)
        kind = "target tracking" if p.target_tracking_configuration else "step"
        error = Text(m.error or "", style="red") if m else Text("")
        _cells(
            table,
            p.policy_name,
            kind,
            metric_text(p.metric),
            _goal(p),
            _num(m.value) if m else "",
            when(m.at) if m else "",
            error,
        )
    return table


def schedule_table(d: ScalingDescription) -> Table:
    table = Table(box=None, header_style="bold")
    for col in ("ACTION", "SCHEDULE", "TIMEZONE", "MIN", "MAX", "NEXT", "LAST FIRED"):
        table.add_column(col)
    for a in d.scheduled_actions:
        _cells(
            table,
            a.scheduled_action_name,
            a.schedule,
            a.timezone,
            "" if a.min_capacity is None else str(a.min_capacity),
            "" if a.max_capacity is None else str(a.max_capacity),
            when(a.next_fire_time) or "(no more)",
            when(a.last_fired_at),
        )
    return table


def scaling_panel(d: ScalingDescription) -> Panel:
    t = d.scalable_target
    head = Text()
    head.append("target    ", style="bold")
    head.append(target_text(t) + "\n")
    head.append("tasks     ", style="bold")
    head.append(f"desired {d.desired_count}, running {d.running_count}")
    head.append(f", pending {d.pending_count}\n" if d.pending_count else "\n")
    head.append("decision  ", style="bold")
    if d.last_decision is not None:
        head.append(d.last_decision.reason)
    elif d.scaling_loop == LoopRole.LEADER:
        head.append("(none yet)", style="dim")
    else:
        head.append(f"(the scaling loop is {d.scaling_loop.value} here)", style="dim")
    parts: list[RenderableType] = [head]
    parts += [Text("\npolicies", style="bold"), policy_table(d) if d.policies else Text("none")]
    if d.scheduled_actions:
        parts += [Text("\nscheduled actions", style="bold"), schedule_table(d)]
    return Panel(Group(*parts), title=f"autoscaling: {t.service_name}", title_align="left")


def activity_table(activities: Sequence[ScalingActivity]) -> Table:
    table = Table(box=None, header_style="bold")
    for col in ("TIME", "METRIC", "POLICY", "FROM → TO", "REASON"):
        table.add_column(col)
    for a in activities:
        reason = Text(a.reason)
        if a.status == ActivityStatus.FAILED:
            reason = Text(f"FAILED: {a.status_message or ''} ({a.reason})", style="red")
        _cells(
            table,
            when(a.at),
            _num(a.metric_value),
            a.policy_name or "",
            f"{a.from_count} → {a.to_count}",
            reason,
        )
    return table


def targets_table(targets: Sequence[ScalableTarget]) -> Table:
    table = Table(box=None, header_style="bold")
    for col in ("SERVICE", "MIN", "MAX", "SUSPENDED", "UPDATED"):
        table.add_column(col)
    for t in targets:
        text = target_text(t)
        suspended = text.split("suspended: ")[1].split(";")[0] if "suspended: " in text else ""
        _cells(
            table,
            t.service_name,
            str(t.min_capacity),
            str(t.max_capacity),
            suspended,
            when(t.updated_at),
        )
    return table


# -- watch ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sample:
    """One reading of ``describe`` as ``watch`` keeps it."""

    at: float  # seconds (monotonic)
    wall: datetime
    desired: int
    running: int
    pending: int
    metrics: dict[str, float | None] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    decision: str | None = None

    @classmethod
    def of(cls, d: ScalingDescription, at: float, wall: datetime) -> Sample:
        return cls(
            at=at,
            wall=wall,
            desired=d.desired_count,
            running=d.running_count,
            pending=d.pending_count,
            metrics={p.policy_name: _value(d, p.policy_name) for p in d.policies},
            errors={n: m.error for n, m in d.metrics.items() if m.error},
            decision=d.last_decision.reason if d.last_decision else None,
        )

    def to_json(self) -> dict[str, Any]:
        metrics: dict[str, Any] = {}
        for name, value in self.metrics.items():
            metrics[name] = {"value": value}
            if name in self.errors:
                metrics[name]["error"] = self.errors[name]
        out: dict[str, Any] = {
            "at": self.wall.isoformat(),
            "desiredCount": self.desired,
            "runningCount": self.running,
            "pendingCount": self.pending,
            "metrics": metrics,
        }
        if self.decision is not None:
            out["decision"] = self.decision
        return out


def _value(d: ScalingDescription, policy: str) -> float | None:
    m = d.metrics.get(policy)
    return None if m is None else m.value


def columns(
    samples: Sequence[Sample], pick: Any, now: float, window: float, width: int
) -> list[float | None]:
    """``width`` values over the last ``window`` seconds, oldest left: each column the
    latest sample in its slice of time, or the one before it (a step chart); None before
    the first sample."""
    out: list[float | None] = [None] * width
    start = now - window
    for s in samples:
        if s.at < start or s.at > now:
            continue
        i = min(width - 1, int((s.at - start) / window * width))
        value = pick(s)
        if value is not None:
            out[i] = float(value)
    last: float | None = None
    for i, value in enumerate(out):
        if value is None:
            out[i] = last
        else:
            last = value
    return out


def nice_top(values: Sequence[float | None], floor: float = 1.0) -> float:
    """A round scale top at or above every value: 1, 2 or 5 times a power of ten."""
    peak = max([v for v in values if v is not None and math.isfinite(v)] + [floor])
    magnitude = 10 ** math.floor(math.log10(peak))
    for step in (1, 2, 5, 10):
        if step * magnitude >= peak:
            return float(step * magnitude)
    return float(10 * magnitude)  # pragma: no cover - the loop always returns


def bars(values: Sequence[float | None], top: float, height: int) -> list[str]:
    """Rows, top first, of a bar chart in eighth blocks (a blank column: no value)."""
    rows = []
    fills = [
        None if v is None else max(0, min(height * 8, round(v / top * height * 8))) for v in values
    ]
    for r in range(height - 1, -1, -1):
        row = []
        for fill in fills:
            if fill is None:
                row.append(" ")
            else:
                row.append(EIGHTHS[max(0, min(8, fill - r * 8))])
        rows.append("".join(row))
    return rows


def _series(
    name: str, now_value: str, values: Sequence[float | None], top: float, height: int, style: str
) -> Text:
    out = Text()
    for i, row in enumerate(bars(values, top, height)):
        label = f"{name[: LABEL - 8]:<{LABEL - 8}}{now_value:>6}  " if i == 0 else " " * LABEL
        out.append(label, style="bold")
        out.append(row + "│", style=style)
        if i == 0:
            out.append(f" {top:g}", style="dim")
        elif i == height - 1:
            out.append(" 0", style="dim")
        out.append("\n")
    return out


def watch_view(
    service: str,
    samples: Sequence[Sample],
    now: float,
    *,
    window: float,
    width: int,
    max_capacity: int,
    policies: Sequence[str],
) -> Panel:
    """The live chart: each policy's metric (6 rows), then desired and running counts
    (3 rows each, on one scale up to maxCapacity), over the last ``window`` seconds."""
    chart_width = max(10, min(MAX_CHART, width - LABEL - 12))
    latest = samples[-1] if samples else None
    body = Text()
    for name in policies:
        values = columns(samples, lambda s, n=name: s.metrics.get(n), now, window, chart_width)
        now_value = latest.metrics.get(name) if latest else None
        body.append_text(_series(name, _num(now_value), values, nice_top(values), 6, "cyan"))
        if latest is not None and name in latest.errors:
            body.append(f"{'':<{LABEL}}error: {latest.errors[name]}\n", style="red")
    top = float(max(1, max_capacity))
    counts: list[tuple[str, Callable[[Sample], int], str]] = [
        ("desired", lambda s: s.desired, "yellow"),
        ("running", lambda s: s.running, "green"),
    ]
    for label, pick, style in counts:
        values = columns(samples, pick, now, window, chart_width)
        shown = "" if latest is None else str(pick(latest))
        body.append_text(_series(label, shown, values, top, 3, style))
    span = f"{window / 60:g} min" if window >= 60 else f"{window:g} s"
    body.append(f"{'':<{LABEL}}← {span} ago{'now →':>{max(0, chart_width - len(span) - 6)}}\n")
    if latest is not None and latest.decision:
        body.append("decision: ", style="bold")
        body.append(latest.decision)
    title = f"autoscaling: {service} (Ctrl-C to stop)"
    return Panel(body, title=title, title_align="left")
