"""Rich tables and panels for services: list, describe (settings, deployments, events,
tasks)."""

from __future__ import annotations

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from hatoba.cli.render import task_table, when
from hatoba.model.service import Deployment, DeploymentStatus, RolloutState, Service, ServiceEvent
from hatoba.model.task import Task

_ROLLOUT_STYLE = {
    RolloutState.COMPLETED: "green",
    RolloutState.IN_PROGRESS: "yellow",
    RolloutState.FAILED: "red",
}
INACTIVE_SHOWN = 3


def _cells(table: Table, *cells: str | Text) -> None:
    table.add_row(*(c if isinstance(c, Text) else Text(c) for c in cells))


def _rollout(d: Deployment | None) -> Text:
    if d is None:
        return Text("")
    return Text(d.rollout_state.value, style=_ROLLOUT_STYLE.get(d.rollout_state, ""))


def service_table(services: list[Service]) -> Table:
    table = Table(box=None, header_style="bold")
    cols = ("NAME", "STATUS", "TASK DEFINITION", "DESIRED", "RUNNING", "PENDING", "ROLLOUT")
    for col in (*cols, "DEPLOYMENTS", "CREATED"):
        table.add_column(col)
    for s in services:
        live = [d for d in s.deployments if d.status != DeploymentStatus.INACTIVE]
        _cells(
            table,
            s.service_name,
            s.status.value,
            s.task_definition,
            str(s.desired_count),
            str(s.running_count),
            str(s.pending_count),
            _rollout(s.primary),
            str(len(live)),
            when(s.created_at),
        )
    return table


def _config_text(s: Service) -> str:
    low, high = s.deployment_configuration.limits(s.scheduling_strategy)
    cb = s.deployment_configuration.deployment_circuit_breaker
    breaker = "off" if not cb.enable else "on, with rollback" if cb.rollback else "on"
    return f"minimum healthy {low}%, maximum {high}%, circuit breaker {breaker}"


def _placement_text(s: Service) -> tuple[str, str]:
    constraints = [
        f"{c.get('type')}" + (f"({c['expression']})" if c.get("expression") else "")
        for c in s.placement_constraints
    ]
    strategies = [
        f"{p.get('type')}" + (f":{p['field']}" if p.get("field") else "")
        for p in s.placement_strategy
    ]
    return ", ".join(constraints), ", ".join(strategies)


def deployment_table(deployments: list[Deployment]) -> Table:
    table = Table(box=None, header_style="bold", title="deployments", title_justify="left")
    cols = ("ID", "STATUS", "TASK DEFINITION", "DESIRED", "PENDING", "RUNNING", "FAILED")
    for col in (*cols, "ROLLOUT", "REASON", "UPDATED"):
        table.add_column(col)
    current = [d for d in deployments if d.status != DeploymentStatus.INACTIVE]
    past = [d for d in deployments if d.status == DeploymentStatus.INACTIVE]
    shown = sorted(current, key=lambda d: d.created_at, reverse=True)
    shown += sorted(past, key=lambda d: d.created_at, reverse=True)[:INACTIVE_SHOWN]
    for d in shown:
        dim = "dim" if d.status == DeploymentStatus.INACTIVE else ""
        reason = d.rollout_state_reason + (
            f" (rollback of {d.rollback_of})" if d.rollback_of else ""
        )
        _cells(
            table,
            Text(d.id, style=dim),
            Text(
                d.status.value,
                style=dim or ("bold" if d.status == DeploymentStatus.PRIMARY else ""),
            ),
            d.task_definition,
            str(d.desired_count),
            str(d.pending_count),
            str(d.running_count),
            str(d.failed_tasks),
            _rollout(d),
            reason,
            when(d.updated_at),
        )
    return table


def service_panel(s: Service, events: list[ServiceEvent], tasks: list[Task]) -> Panel:
    head = Table.grid(padding=(0, 2))
    constraints, strategies = _placement_text(s)
    rows = [
        ("status", s.status.value),
        ("task definition", s.task_definition),
        ("scheduling", s.scheduling_strategy.value),
        ("tasks", f"{s.desired_count} desired, {s.running_count} running, "
                  f"{s.pending_count} pending"),
        ("deployment", _config_text(s)),
        ("grace period", f"{s.health_check_grace_period_seconds}s"),
        ("constraints", constraints),
        ("strategy", strategies),
        ("last completed", s.completed_task_definition or ""),
        ("created", when(s.created_at)),
        ("updated", when(s.updated_at)),
    ]  # fmt: skip
    for label, value in rows:
        if value:
            _cells(head, Text(label, style="bold"), value)
    log = Table(box=None, header_style="bold", title="events (latest 10)", title_justify="left")
    log.add_column("WHEN")
    log.add_column("MESSAGE")
    for e in events:
        _cells(log, when(e.created_at), e.message)
    live = task_table(tasks)
    live.title, live.title_justify = "tasks", "left"
    return Panel(
        Group(head, deployment_table(s.deployments), log, live),
        title=f"service {s.service_name}",
        title_align="left",
        expand=False,
    )
