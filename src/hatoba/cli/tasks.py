"""``hatoba task ...``: list, describe, stop tasks and read their logs."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from hatoba.cli import output
from hatoba.cli.connection import session
from hatoba.cli.logs_out import write_lines
from hatoba.cli.output import OutputFormat, OutputOption
from hatoba.cli.parsing import parse_duration
from hatoba.cli.render import short_id, task_panel, task_table
from hatoba.model.task import DesiredStatus, LastStatus

app = typer.Typer(help="Inspect and stop tasks, read their logs.")


@app.command("list")
def list_(
    family: Annotated[str | None, typer.Option(help="Only tasks of this family.")] = None,
    status: Annotated[
        DesiredStatus | None,
        typer.Option(case_sensitive=False, help="Desired status: RUNNING or STOPPED."),
    ] = None,
    started_by: Annotated[str | None, typer.Option(help="Only tasks with this startedBy.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000, help="At most this many.")] = 100,
    output_: OutputOption = None,
) -> None:
    """List tasks, newest first."""
    with session() as client:
        tasks = client.list_tasks(
            family=family, desired_status=status, started_by=started_by, limit=limit
        )
    if output.output_format(output_) == OutputFormat.JSON:
        output.print_json(tasks)
    else:
        output.stdout().print(task_table(tasks))


@app.command()
def describe(
    task: Annotated[str, typer.Argument(help="Task id (or a unique prefix of 4+ characters).")],
    output_: OutputOption = None,
) -> None:
    """Show a task: statuses, why it stopped, each container's exit code and health."""
    with session() as client:
        found = client.describe_task(task)
    if output.output_format(output_) == OutputFormat.JSON:
        output.print_json(found)
    else:
        output.stdout().print(task_panel(found))


@app.command()
def stop(
    task: Annotated[str, typer.Argument(help="Task id or unique prefix.")],
    reason: Annotated[str | None, typer.Option(help="Recorded as stoppedReason.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until it has stopped.")] = False,
    output_: OutputOption = None,
) -> None:
    """Ask a task to stop: its stop signal, then SIGKILL after its stopTimeout."""
    with session() as client:
        found = client.stop_task(task, reason)
        if wait:
            with output.waiting(f"stopping {short_id(found.task_id)}..."):
                found = client.wait_task(found.task_id, LastStatus.STOPPED, timeout=None)
    if output.output_format(output_) == OutputFormat.JSON:
        output.print_json(found)
        return
    if found.last_status == LastStatus.STOPPED:
        code = found.exit_code
        suffix = "" if code is None else f" (exit code {code})"
        output.stdout().print(f"Stopped {found.task_id}{suffix}", markup=False, highlight=False)
    else:
        output.stdout().print(f"Stopping {found.task_id}", markup=False, highlight=False)


@app.command()
def logs(
    task: Annotated[str, typer.Argument(help="Task id or unique prefix.")],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing until the task stops.")
    ] = False,
    container: Annotated[str | None, typer.Option(help="Only this container.")] = None,
    since: Annotated[
        str | None, typer.Option(help="Only lines from the last DURATION (e.g. 10m, 1h).")
    ] = None,
    timestamps: Annotated[
        bool, typer.Option("--timestamps", "-t", help="Prefix each line with its UTC time.")
    ] = False,
    prefix: Annotated[
        bool, typer.Option("--prefix", help="Prefix each line with 'container | '.")
    ] = False,
    output_: OutputOption = None,
) -> None:
    """Print a task's output: exact bytes by default, NDJSON with --output json."""
    since_ns = None
    if since is not None:
        since_ns = time.time_ns() - int(parse_duration(since, "--since") * 1e9)
    as_json = output.output_format(output_) == OutputFormat.JSON
    with session() as client:
        try:
            write_lines(
                client.stream_logs(task, follow=follow, container=container, since_ns=since_ns),
                prefix=prefix,
                timestamps=timestamps,
                as_json=as_json,
            )
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
