"""Human-readable tables and panels (rich) for tasks and task definitions."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from hatoba.model.node import NodeDescription, NodeStatus
from hatoba.model.task import LastStatus, Task
from hatoba.model.taskdef import TaskDefinition

SHORT_ID = 12
_STATUS_STYLE = {
    LastStatus.RUNNING: "green",
    LastStatus.STOPPED: "dim",
    LastStatus.PENDING: "yellow",
    LastStatus.PROVISIONING: "yellow",
}


_NODE_STYLE = {NodeStatus.ACTIVE: "green", NodeStatus.DRAINING: "yellow"}


def short_id(task_id: str) -> str:
    return task_id[:SHORT_ID]


def when(ts: datetime | None) -> str:
    """Local time, to the second; an empty cell when unset."""
    if ts is None:
        return ""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _row(table: Table, *cells: str | Text) -> None:
    """Add a row of plain text: user data (commands, reasons) must never be read as markup."""
    table.add_row(*(c if isinstance(c, Text) else Text(c) for c in cells))


def _code(value: int | None) -> str:
    return "" if value is None else str(value)


def taskdef_table(tds: list[TaskDefinition]) -> Table:
    table = Table(box=None, header_style="bold")
    for col in ("TASK DEFINITION", "STATUS", "CONTAINERS", "CPU", "MEMORY", "REGISTERED"):
        table.add_column(col)
    for td in tds:
        _row(
            table,
            td.arn,
            td.status.value,
            ", ".join(c.name for c in td.container_definitions),
            _code(td.cpu),
            "" if td.memory is None else f"{td.memory} MiB",
            when(td.registered_at),
        )
    return table


def taskdef_panel(td: TaskDefinition) -> Panel:
    head = Table.grid(padding=(0, 2))
    _row(head, "status", td.status.value)
    _row(head, "cpu", "" if td.cpu is None else f"{td.cpu} units")
    _row(head, "memory", "" if td.memory is None else f"{td.memory} MiB")
    _row(head, "registered", when(td.registered_at))
    if td.deregistered_at is not None:
        _row(head, "deregistered", when(td.deregistered_at))
    containers = Table(box=None, header_style="bold", title="containers", title_justify="left")
    for col in ("NAME", "ESSENTIAL", "COMMAND", "CPU", "MEMORY"):
        containers.add_column(col)
    for c in td.container_definitions:
        _row(
            containers,
            c.name,
            "yes" if c.essential else "no",
            " ".join(c.argv()),
            str(c.cpu),
            _code(c.memory),
        )
    return Panel(Group(head, containers), title=td.arn, title_align="left", expand=False)


def task_table(tasks: list[Task]) -> Table:
    table = Table(box=None, header_style="bold")
    cols = ("ID", "TASK DEFINITION", "LAST", "DESIRED", "HEALTH", "EXIT", "STARTED", "STOPPED")
    for col in cols:
        table.add_column(col)
    for t in tasks:
        _row(
            table,
            short_id(t.task_id),
            t.task_definition_arn,
            Text(t.last_status.value, style=_STATUS_STYLE.get(t.last_status, "")),
            t.desired_status.value,
            t.health_status.value,
            _code(t.exit_code),
            when(t.started_at),
            t.stopped_reason or t.pending_reason or "",
        )
    return table


def task_panel(task: Task) -> Panel:
    head = Table.grid(padding=(0, 2))
    rows: list[tuple[str, str]] = [
        ("task definition", task.task_definition_arn),
        ("status", f"{task.last_status.value} (desired {task.desired_status.value})"),
        ("health", task.health_status.value),
        ("node", task.node_id or ""),
        ("resources", f"{task.cpu} cpu units, {task.memory} MiB"),
    ]
    if task.pending_reason:
        rows.append(("waiting for a node", task.pending_reason))
    if task.stop_code is not None or task.stopped_reason:
        rows.append(("stop code", str(task.stop_code or "")))
        rows.append(("stopped reason", task.stopped_reason or ""))
    if task.exit_code is not None:
        rows.append(("exit code", str(task.exit_code)))
    for label, value in (("started by", task.started_by), ("group", task.group)):
        if value:
            rows.append((label, value))
    if task.timeout_seconds is not None:
        rows.append(("timeout", f"{task.timeout_seconds:g}s"))
    for label, ts in (
        ("created", task.created_at),
        ("started", task.started_at),
        ("stopping", task.stopping_at),
        ("stopped", task.stopped_at),
    ):
        if ts is not None:
            rows.append((label, when(ts)))
    for label, value in rows:
        _row(head, Text(label, style="bold"), value)
    parts: list[RenderableType] = [head, _containers(task)]
    overrides = _overrides(task)
    if overrides:
        parts.append(overrides)
    return Panel(Group(*parts), title=f"task {task.task_id}", title_align="left", expand=False)


def _containers(task: Task) -> Table:
    table = Table(box=None, header_style="bold", title="containers", title_justify="left")
    for col in ("NAME", "ESSENTIAL", "STATUS", "EXIT", "HEALTH", "PID", "REASON"):
        table.add_column(col)
    for c in task.containers:
        _row(
            table,
            c.name,
            "yes" if c.essential else "no",
            c.last_status.value,
            _code(c.exit_code),
            c.health_status.value,
            _code(c.pid),
            c.reason or "",
        )
    return table


def _overrides(task: Task) -> Table | None:
    o = task.overrides
    lines: list[str] = []
    if o.cpu is not None:
        lines.append(f"cpu: {o.cpu} units")
    if o.memory is not None:
        lines.append(f"memory: {o.memory} MiB")
    for c in o.container_overrides:
        if c.command is not None:
            lines.append(f"{c.name}: command {' '.join(c.command)}")
        for kv in c.environment:
            lines.append(f"{c.name}: env {kv.name}={kv.value}")
        for label, value in (("cpu", c.cpu), ("memory", c.memory)):
            if value is not None:
                lines.append(f"{c.name}: {label} {value}")
    if not lines:
        return None
    table = Table(box=None, title="overrides", title_justify="left", show_header=False)
    table.add_column()
    for line in lines:
        _row(table, line)
    return table


def node_table(nodes: list[NodeDescription]) -> Table:
    table = Table(box=None, header_style="bold")
    for col in ("NODE", "STATUS", "HOSTNAME", "CPU USED", "MEMORY USED", "TASKS", "HEARTBEAT"):
        table.add_column(col)
    for n in nodes:
        _row(
            table,
            n.node_id,
            Text(n.status.value, style=_NODE_STYLE.get(n.status, "dim")),
            n.hostname,
            f"{n.used_cpu}/{n.cpu}",
            f"{n.used_memory}/{n.memory} MiB",
            str(n.running_tasks_count),
            when(n.heartbeat_at),
        )
    return table


def node_panel(node: NodeDescription) -> Panel:
    head = Table.grid(padding=(0, 2))
    rows = [
        ("status", node.status.value),
        ("hostname", node.hostname),
        ("cpu", f"{node.used_cpu} of {node.cpu} units reserved ({node.free_cpu} free)"),
        (
            "memory",
            f"{node.used_memory} of {node.memory} MiB reserved ({node.free_memory} free)",
        ),
        ("tasks", f"{node.running_tasks_count} not yet stopped"),
        ("driver", node.driver),
        ("registered", when(node.registered_at)),
        ("heartbeat", when(node.heartbeat_at)),
    ]
    for label, value in rows:
        _row(head, Text(label, style="bold"), value)
    attrs = Table(box=None, header_style="bold", title="attributes", title_justify="left")
    attrs.add_column("NAME")
    attrs.add_column("VALUE")
    for name in sorted(node.attributes):
        _row(attrs, name, node.attributes[name])
    return Panel(Group(head, attrs), title=f"node {node.node_id}", title_align="left", expand=False)
