"""Rich tables and panels for jobs: list, history, next fire times, describe (spec, next
fires, last runs, events). A tick is shown in the job's own time zone; the other times in the
machine's local time, as every other table does."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from hatoba.cli.jobs_follow import task_attempts
from hatoba.cli.render import when
from hatoba.client.http import NextFires
from hatoba.model.job import Job, JobEvent, JobRun, RunStatus

_STATUS_STYLE = {
    RunStatus.SUCCEEDED: "green",
    RunStatus.FAILED: "red",
    RunStatus.RUNNING: "yellow",
    RunStatus.PENDING: "yellow",
    RunStatus.RETRYING: "yellow",
    RunStatus.SKIPPED: "dim",
    RunStatus.CANCELLED: "dim",
}


def _cells(table: Table, *cells: str | Text) -> None:
    table.add_row(*(c if isinstance(c, Text) else Text(c) for c in cells))


def _table(*cols: str, title: str | None = None) -> Table:
    table = Table(box=None, header_style="bold", title=title, title_justify="left")
    for col in cols:
        table.add_column(col)
    return table


def zone_of(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def in_zone(ts: datetime | None, zone: str) -> str:
    """``2026-03-02 09:00:00 JST``: the instant on the wall clock of ``zone``."""
    if ts is None:
        return ""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(zone_of(zone)).strftime("%Y-%m-%d %H:%M:%S %Z")


def utc(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_text(status: RunStatus) -> Text:
    return Text(status.value, style=_STATUS_STYLE.get(status, ""))


def job_table(jobs: list[Job], next_fire: dict[str, datetime | None]) -> Table:
    table = _table("NAME", "TASK DEFINITION", "SCHEDULE", "TIME ZONE", "STATE", "NEXT")
    for j in jobs:
        state = Text("enabled", style="green") if j.enabled else Text("disabled", style="dim")
        nxt = next_fire.get(j.job_name)
        _cells(
            table,
            j.job_name,
            j.task_definition,
            j.schedule or "(manual)",
            j.timezone,
            state,
            in_zone(nxt, j.timezone) if j.enabled and nxt is not None else "",
        )
    return table


def _started(run: JobRun) -> datetime | None:
    return run.attempts[0].started_at if run.attempts else None


def history_table(runs: list[JobRun], timezone: str, title: str | None = None) -> Table:
    table = _table(
        "RUN ID",
        "TRIGGER",
        "TICK",
        "STATUS",
        "ATTEMPTS",
        "EXIT",
        "STARTED",
        "STOPPED",
        "REASON",
        title=title,
    )
    for r in runs:
        code = r.exit_code
        _cells(
            table,
            r.run_id,
            r.trigger.value + (f" ({r.parent_run_id})" if r.parent_run_id else ""),
            in_zone(r.tick, timezone),
            status_text(r.status),
            str(len(task_attempts(r))),
            "" if code is None else str(code),
            when(_started(r)),
            when(r.finished_at),
            r.reason or "",
        )
    return table


def attempts_table(run: JobRun) -> Table:
    table = _table("#", "TASK", "STARTED", "STOPPED", "EXIT", "STOP CODE", "REASON")
    n = 0
    for a in run.attempts:
        if a.launch_failure is None:
            n += 1
        _cells(
            table,
            str(n) if a.launch_failure is None else "-",
            a.task_id or "",
            when(a.started_at),
            when(a.stopped_at),
            "" if a.exit_code is None else str(a.exit_code),
            a.stop_code or "",
            a.launch_failure or a.stopped_reason or "",
        )
    return table


def next_table(nf: NextFires) -> Table:
    zone = nf.timezone
    table = _table("#", f"LOCAL ({zone})", "UTC")
    for i, t in enumerate(nf.fire_times, 1):
        _cells(table, str(i), in_zone(t, zone), utc(t))
    return table


def _chain_text(job: Job) -> str:
    parts = [
        f"{label} → {', '.join(names)}"
        for label, names in (
            ("on success", job.chain.on_success),
            ("on failure", job.chain.on_failure),
            ("always", job.chain.always),
        )
        if names
    ]
    return "; ".join(parts)


def _retry_text(job: Job) -> str:
    r = job.retry
    if r.max_attempts <= 1:
        return "launch failures only"
    on = "failures and launch failures" if r.retry_on_failure else "launch failures only"
    return (
        f"up to {r.max_attempts} attempts ({on}), backoff {r.backoff_seconds:g} s "
        f"doubling to {r.max_backoff_seconds:g} s"
    )


def spec_grid(job: Job) -> Table:
    head = Table.grid(padding=(0, 2))
    rows = [
        ("task definition", job.task_definition),
        ("schedule", job.schedule or "(none: manual or chained runs only)"),
        ("time zone", job.timezone),
        ("state", "enabled" if job.enabled else "disabled"),
        ("flexible window", f"{job.flexible_window_minutes} min"),
        ("overlap", job.overlap_policy.value),
        (
            "missed runs",
            f"{job.missed_run_policy.value} (deadline {job.starting_deadline_seconds} s, "
            f"at most {job.max_missed_runs})",
        ),
        ("retry", _retry_text(job)),
        ("timeout", "none" if job.timeout_seconds is None else f"{job.timeout_seconds:g} s"),
        ("chain", _chain_text(job) or "none"),
        ("history kept", f"{job.history_retention_days} days"),
        ("created", when(job.created_at)),
        ("updated", when(job.updated_at)),
    ]
    if job.flexible_window_minutes == 0:
        rows = [r for r in rows if r[0] != "flexible window"]
    for label, value in rows:
        _cells(head, label, value)
    for i, n in enumerate(job.notifications):
        events = ", ".join(e.value for e in n.events)
        _cells(head, "webhook" if i == 0 else "", f"{n.url} ({n.format.value}: {events})")
    return head


def events_table(events: list[JobEvent]) -> Table:
    table = _table("TIME", "MESSAGE", title="events")
    for e in events:
        _cells(table, when(e.created_at), e.message)
    return table


def job_panel(job: Job, nxt: NextFires, runs: list[JobRun], events: list[JobEvent]) -> Panel:
    parts: list[Table] = [spec_grid(job)]
    if nxt.fire_times:
        fires = next_table(nxt)
        fires.title = "next fire times" + ("" if job.enabled else " (when enabled)")
        fires.title_justify = "left"
        parts.append(fires)
    if runs:
        parts.append(history_table(runs, job.timezone, title="last runs"))
    if events:
        parts.append(events_table(events))
    return Panel(Group(*parts), title=f"job {job.job_name}", title_align="left")


def run_panel(run: JobRun, timezone: str) -> Panel:
    head = Table.grid(padding=(0, 2))
    for label, value in (
        ("job", run.job_name),
        ("status", status_text(run.status)),
        ("trigger", run.trigger.value),
        ("parent run", run.parent_run_id or ""),
        ("tick", in_zone(run.tick, timezone)),
        ("reason", run.reason or ""),
        ("next attempt", when(run.next_attempt_at)),
        ("created", when(run.created_at)),
        ("finished", when(run.finished_at)),
    ):
        if value:
            _cells(head, label, value)
    return Panel(Group(head, attempts_table(run)), title=f"run {run.run_id}", title_align="left")
