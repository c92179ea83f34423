"""``hatoba diff|apply|up``: an application declared in one file (``hatoba.yaml``).

```
load_app_file (model.appfile) ─▶ plan_app (client.apply: read server ─▶ model.appfile_diff)
   diff:  print the plan; exit 0 no changes, 2 changes
   apply: print the plan ─▶ apply_plan ─▶ [--wait: wait_steady]
   up:    apply ─▶ live status table ─▶ Ctrl-C: scale to 0, wait for STOPPED
```
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from hatoba.cli import output
from hatoba.cli.connection import Connection, connect
from hatoba.cli.exitcodes import DEPLOYMENT_FAILED, INTERRUPTED
from hatoba.cli.output import OutputFormat, OutputOption
from hatoba.cli.parsing import parse_duration
from hatoba.client import ApiError, HatobaClient
from hatoba.client.apply import (
    ApplyResult,
    BeforeDeployFailed,
    apply_plan,
    live_tasks,
    plan_app,
    steadiness,
    wait_steady,
)
from hatoba.client.apply_scaling import stop_scaling
from hatoba.config import Settings
from hatoba.model.appfile import DEFAULT_FILE, AppFile, load_app_file
from hatoba.model.appfile_diff import (
    NEW_REVISION,
    SECRET,
    SECRET_CHANGED,
    SECRET_UNREADABLE,
    Action,
    Plan,
)
from hatoba.model.errors import ValidationFailed
from hatoba.model.service import Service

CHANGES_EXIT = 2  # diff: there are changes (terraform plan -detailed-exitcode)
REFRESH_SECONDS = 1.0
STOP_POLL_SECONDS = 0.5

FileOption = Annotated[
    str,
    typer.Option("--file", "-f", metavar="FILE", help="The app file (- for stdin)."),
]
_MARK = {
    Action.CREATE: ("+", "green"),
    Action.UPDATE: ("~", "yellow"),
    Action.UNCHANGED: ("=", "dim"),
}
_MARKERS = {SECRET, SECRET_CHANGED, SECRET_UNREADABLE}
_ROLLOUT_STYLE = {"COMPLETED": "green", "IN_PROGRESS": "yellow", "FAILED": "red"}


# -- loading and showing ----------------------------------------------------------------------


def load(file: str) -> AppFile:
    """The app file, validated; every problem printed as ``FILE:LINE: path: message``."""
    name = "stdin" if file == "-" else file
    try:
        text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
    except OSError as exc:
        raise output.fail(f"cannot read {name}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise output.fail(f"{name} is not UTF-8 text: {exc}") from None
    app_dir = os.getcwd() if file == "-" else None
    try:
        app = load_app_file(text, name, os.environ, app_dir=app_dir)
    except ValidationFailed as exc:
        raise invalid(exc) from None
    for w in app.warnings:
        output.warning(str(w))
    return app


def invalid(exc: ValidationFailed) -> typer.Exit:
    count = len(exc.errors)
    problems = f"{count} problem{'s' if count != 1 else ''}"
    return output.fail(f"{exc.subject}: {problems}; nothing was changed", fields=exc.errors)


def make_plan(client: HatobaClient, app: AppFile) -> Plan:
    try:
        return plan_app(client, app)
    except ValidationFailed as exc:
        raise invalid(exc) from None


def _value(value: Any) -> str:
    if isinstance(value, str) and (value in _MARKERS or value.endswith(NEW_REVISION)):
        return value
    return json.dumps(value, ensure_ascii=False)


def plan_text(the_plan: Plan, *, unchanged: bool = True) -> Text:
    """``+ service api`` / ``~ taskDefinition web`` with each field as ``path: old → new``."""
    out = Text()
    for change in the_plan.changes:
        if change.action == Action.UNCHANGED and not unchanged:
            continue
        mark, style = _MARK[change.action]
        out.append(f"{mark} {change.kind.value} ", style=style)
        out.append(change.name, style=f"bold {style}")
        if change.action == Action.UNCHANGED:
            out.append(" (unchanged)", style="dim")
        out.append("\n")
        for f in change.fields:
            out.append(f"    {f.path}: ")
            if change.action == Action.CREATE:
                out.append(_value(f.new), style="green")
            elif f.new is None:
                out.append(_value(f.old), style="red")
                out.append(" (removed)", style="dim")
            elif f.old is None:
                out.append(_value(f.new), style="green")
                out.append(" (added)", style="dim")
            else:
                out.append(_value(f.old), style="red")
                out.append(" → ")
                out.append(_value(f.new), style="green")
            out.append("\n")
    out.append(_counts(the_plan))
    return out


def _counts(the_plan: Plan) -> str:
    n = {a: sum(1 for c in the_plan.changes if c.action == a) for a in Action}
    if not the_plan.has_changes:
        return f"No changes ({n[Action.UNCHANGED]} unchanged)."
    return (
        f"Plan: {n[Action.CREATE]} to create, {n[Action.UPDATE]} to update, "
        f"{n[Action.UNCHANGED]} unchanged."
    )


def _session(quiet: bool = False) -> Connection:
    return connect(Settings.from_env(), quiet=quiet)


# -- diff -------------------------------------------------------------------------------------


def diff(file: FileOption = DEFAULT_FILE, output_: OutputOption = None) -> None:
    """Show what `hatoba apply` would change: parameters, task definitions, services.

    Drift counts: a service scaled by hand shows as an update back to the file's count.
    SecureString values are compared but never shown.

    Exit status: 0 no changes, 2 changes to apply (like `terraform plan
    -detailed-exitcode`), 1 error (an invalid file, or a server that cannot be reached).
    """
    app = load(file)
    with _session() as conn:
        the_plan = make_plan(conn.client, app)
    if output.output_format(output_) == OutputFormat.JSON:
        output.print_json(the_plan.to_json())
    else:
        output.stdout().print(plan_text(the_plan), highlight=False)
    raise typer.Exit(CHANGES_EXIT if the_plan.has_changes else 0)


# -- apply ------------------------------------------------------------------------------------


def apply(
    file: FileOption = DEFAULT_FILE,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait", help="Wait until every service of the file is steady (rollout COMPLETED)."
        ),
    ] = False,
    timeout: Annotated[
        str, typer.Option(metavar="DURATION", help="With --wait: give up after this long.")
    ] = "10m",
    output_: OutputOption = None,
) -> None:
    """Make the control plane match the file: parameters, then task definitions (a new
    revision only when changed), then the beforeDeploy tasks (when a task definition or a
    service changes; one that exits non-zero stops the apply before any service changes),
    then services.

    The whole file is checked first: when anything is invalid nothing is changed.
    Exit status: 0 applied, 1 error or a failed beforeDeploy task, 3 a service's
    deployment FAILED (--wait).
    """
    wait_seconds = parse_duration(timeout, "--timeout")
    as_json = output.output_format(output_) == OutputFormat.JSON
    app = load(file)
    with _session() as conn:
        result = run_apply(conn.client, app, as_json=as_json)
        status = 0
        if wait:
            status = wait_services(conn.client, app, result, wait_seconds)
        if conn.embedded is not None and result.services:
            output.info(
                "hatoba: services keep running only while a control plane runs "
                "(hatoba server, or hatoba up)",
                style="dim",
            )
    if as_json:
        output.print_json(
            {
                "changes": result.plan.to_json(),
                "registered": result.registered,
                "services": result.services,
                "beforeDeploy": [t.task_id for t in result.before_deploy],
                "summary": result.summary(),
            }
        )
    raise typer.Exit(status)


def run_apply(client: HatobaClient, app: AppFile, *, as_json: bool) -> ApplyResult:
    """Plan, show the plan, apply with progress on stderr, print the summary."""
    the_plan = make_plan(client, app)
    err = output.stderr()
    if not as_json:
        output.stdout().print(plan_text(the_plan, unchanged=False), highlight=False)
    if not the_plan.has_changes:
        return ApplyResult(the_plan)

    def report(message: str, done: bool) -> None:
        err.print(Text("✓ " if done else "… ", style="green" if done else "") + Text(message))

    try:
        result = apply_plan(client, app, the_plan, report=report)
    except BeforeDeployFailed as exc:
        for line in exc.logs:
            err.print(Text(f"  | {line}", style="dim"))
        raise output.fail(f"{exc}; no service was changed") from None
    except ApiError as exc:
        raise output.fail(
            f"{exc.message} (applied so far is kept; fix and apply again)", fields=exc.errors
        ) from None
    if not as_json:
        output.stdout().print(Text(f"Applied: {_summary(result)}"), highlight=False)
    return result


def _summary(result: ApplyResult) -> str:
    n = result.summary()
    extra = (
        f", {len(result.before_deploy)} beforeDeploy task(s) run" if result.before_deploy else ""
    )
    return f"{n['create']} created, {n['update']} updated, {n['unchanged']} unchanged{extra}."


def wait_services(client: HatobaClient, app: AppFile, result: ApplyResult, timeout: float) -> int:
    """Wait for the file's services; 0 all steady, 3 one FAILED (or rolled back), 1 timeout."""
    targets: dict[str, str | None] = {name: result.services.get(name) for name in app.services}
    if not targets:
        return 0
    with output.waiting("waiting for services to reach steady state..."):
        outcome = wait_steady(client, targets, timeout=timeout)
    status = 0
    for name, state in outcome.items():
        if state.state == "steady":
            output.info(f"service {name}: steady")
        elif state.state == "failed":
            output.error(f"service {name}: deployment failed: {state.reason}")
            status = DEPLOYMENT_FAILED
        else:
            output.error(f"service {name}: {state.reason}")
            status = status or 1
    return status


# -- up ---------------------------------------------------------------------------------------


def up(file: FileOption = DEFAULT_FILE) -> None:
    """Apply the file, then show its services live until Ctrl-C; then scale them to 0 and
    wait for their tasks to stop (Ctrl-C again leaves them running).

    Uses the running server, or starts an embedded control plane for as long as this runs.
    """
    app = load(file)
    with _session() as conn:
        client = conn.client
        run_apply(client, app, as_json=False)
        names = list(app.services)
        if not names:
            output.info("the file declares no services; nothing to watch")
            return
        with contextlib.suppress(KeyboardInterrupt):
            watch(client, names)
        status = shut_down(client, names)
    raise typer.Exit(status)


def watch(client: HatobaClient, names: list[str]) -> None:
    """A live table of the services, refreshed every second, until Ctrl-C."""
    console = output.stdout()
    output.info("watching services; Ctrl-C scales them to 0 and stops their tasks", style="dim")
    with Live(status_table(client, names), console=console, auto_refresh=False) as live:
        while True:
            time.sleep(REFRESH_SECONDS)
            live.update(status_table(client, names), refresh=True)


def status_table(client: HatobaClient, names: list[str]) -> Table:
    table = Table(box=None, header_style="bold")
    for col in (
        "SERVICE",
        "TASK DEFINITION",
        "DESIRED",
        "RUNNING",
        "PENDING",
        "ROLLOUT",
        "LAST EVENT",
    ):
        table.add_column(col)
    for name in names:
        try:
            service = client.describe_service(name)
        except ApiError as exc:
            table.add_row(Text(name), Text(exc.message, style="red"))
            continue
        table.add_row(*_status_row(client, service))
    return table


def _status_row(client: HatobaClient, service: Service) -> list[Text]:
    primary = service.primary
    rollout = primary.rollout_state.value if primary is not None else ""
    state = steadiness(service)
    if state.state == "failed" and primary is not None and primary.rollout_state_reason:
        rollout += f" ({primary.rollout_state_reason})"
    events = client.service_events(service.service_name, limit=1)
    last = events[0].message if events else ""
    prefix = f"(service {service.service_name}) "
    return [
        Text(service.service_name, style="bold"),
        Text(service.task_definition),
        Text(str(service.desired_count)),
        Text(str(service.running_count)),
        Text(str(service.pending_count)),
        Text(rollout, style=_ROLLOUT_STYLE.get(rollout.split(" ")[0], "")),
        Text(last.removeprefix(prefix)),
    ]


def shut_down(client: HatobaClient, names: list[str]) -> int:
    """Scale to 0 and wait until no task of the services is left; Ctrl-C again: leave."""
    err: Console = output.stderr()
    err.print("stopping services… (Ctrl-C again to leave them running)", markup=False)
    try:
        try:
            stop_scaling(client, names)  # else the autoscaler would bring them back to min
        except ApiError as exc:
            output.warning(f"could not stop autoscaling: {exc.message}")
        for name in names:
            try:
                client.scale_service(name, 0)
            except ApiError as exc:
                output.warning(f"service {name}: could not scale to 0: {exc.message}")
        while True:
            left = {n: len(t) for n, t in live_tasks(client, names).items() if t}
            if not left:
                break
            time.sleep(STOP_POLL_SECONDS)
    except KeyboardInterrupt:
        output.info("hatoba: leaving the services' tasks running")
        return INTERRUPTED
    err.print("stopped.", markup=False)
    return 0
