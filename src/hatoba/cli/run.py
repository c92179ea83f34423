"""``hatoba run``: start a one-off task and, with ``--follow``, behave like the command itself.

With ``--follow`` the task's output is copied byte for byte and the essential container's
exit code becomes ours, so ``hatoba run -f migrate && deploy`` does what it says. hatoba's
own outcomes use the codes in ``hatoba.cli.exitcodes`` (125 could not start, 124 timed out,
123 lost, 130 interrupted).
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Callable
from typing import Annotated

import typer

from hatoba.cli import output
from hatoba.cli.connection import connect
from hatoba.cli.exitcodes import (
    CANNOT_START,
    INTERRUPTED,
    outcome_message,
    run_exit_status,
    start_exit_status,
)
from hatoba.cli.logs_out import write_lines
from hatoba.cli.output import OutputFormat, OutputOption
from hatoba.cli.parsing import (
    build_overrides,
    parse_duration,
    parse_env,
    placement_options,
    shrink_warnings,
)
from hatoba.cli.retry import backoff_delay
from hatoba.client import ApiError, HatobaClient
from hatoba.config import Settings
from hatoba.model.task import LastStatus, Task, TaskOverride

STOP_WAIT_SECONDS = 60.0
SHRINK_HINT = (
    "hint: pass --allow-shrink to run with less cpu/memory than the task definition asks for"
)


def run(
    task_definition: Annotated[
        str, typer.Argument(metavar="FAMILY[:REV]", help="Task definition to run.")
    ],
    command: Annotated[
        list[str] | None,
        typer.Argument(metavar="[-- CMD...]", help="Override the container's command."),
    ] = None,
    container: Annotated[
        str | None,
        typer.Option(help="Container CMD applies to (default: the first essential one)."),
    ] = None,
    env: Annotated[
        list[str] | None,
        typer.Option(
            "--env", "-e", metavar="K=V", help="Set a variable (all containers, or --container)."
        ),
    ] = None,
    cpu: Annotated[int | None, typer.Option(min=1, help="Task cpu units (1024 = 1 core).")] = None,
    memory: Annotated[int | None, typer.Option(min=6, help="Task memory in MiB.")] = None,
    count: Annotated[int, typer.Option(min=1, max=100, help="How many tasks.")] = 1,
    follow: Annotated[
        bool,
        typer.Option("--follow", "-f", help="Stream output; exit with the task's exit code."),
    ] = False,
    timeout: Annotated[
        str | None, typer.Option(metavar="DURATION", help="Stop the task after this long.")
    ] = None,
    retries: Annotated[
        int, typer.Option(min=0, help="Retry placement failures this many times.")
    ] = 0,
    allow_shrink: Annotated[
        bool, typer.Option("--allow-shrink", help="Allow less cpu/memory than defined.")
    ] = False,
    started_by: Annotated[str | None, typer.Option(help="Recorded as startedBy.")] = None,
    constraint: Annotated[
        list[str] | None,
        typer.Option(
            metavar="EXPR",
            help="memberOf constraint, e.g. 'attribute:rack == r1' (repeatable; all must hold).",
        ),
    ] = None,
    distinct_instance: Annotated[
        bool,
        typer.Option("--distinct-instance", help="At most one task of its group per node."),
    ] = False,
    strategy: Annotated[
        list[str] | None,
        typer.Option(
            metavar="TYPE[:FIELD]",
            help="binpack:memory|binpack:cpu|spread:nodeId|spread:attribute:NAME|random "
            "(repeatable, in order; default binpack:memory then binpack:cpu).",
        ),
    ] = None,
    prefix: Annotated[
        bool, typer.Option("--prefix", help="With --follow, prefix lines with 'container | '.")
    ] = False,
    output_: OutputOption = None,
) -> None:
    """Run a one-off task (with -f: stream its output and exit with its exit code).

    Exit codes besides the task's own: 125 could not start, 124 timed out, 123 lost
    (stopped without an exit code), 130 interrupted (the task is stopped).
    """
    timeout_seconds = parse_duration(timeout, "--timeout") if timeout is not None else None
    if follow and count != 1:
        raise typer.BadParameter("--follow works with one task; drop --count or --follow")
    parse_env(env or [])  # fail on a bad --env before starting anything
    as_json = output.output_format(output_) == OutputFormat.JSON
    with connect(Settings.from_env()) as conn:
        client = conn.client
        td = client.describe_task_definition(task_definition)
        overrides = build_overrides(
            td, command=command, container=container, env=env, cpu=cpu, memory=memory
        )
        if allow_shrink:
            for message in shrink_warnings(td, overrides):
                output.warning(f"{message} (--allow-shrink)")
        constraints, strategies = placement_options(
            constraint or [], distinct_instance, strategy or []
        )
        tasks = start_tasks(
            client,
            td.arn,
            count=count,
            placement_constraints=constraints,
            placement_strategy=strategies,
            overrides=overrides,
            retries=retries,
            started_by=started_by,
            timeout_seconds=timeout_seconds,
            allow_shrink=allow_shrink,
        )
        if follow:
            status = follow_task(client, tasks[0], prefix=prefix, as_json=as_json)
        else:
            status = await_start(client, tasks, as_json=as_json)
            if conn.embedded is not None and status == 0:
                output.info(
                    "hatoba: the task keeps running without supervision until a control "
                    "plane starts again (hatoba server)",
                    style="dim",
                )
    raise typer.Exit(status)


def start_tasks(
    client: HatobaClient,
    arn: str,
    *,
    count: int,
    overrides: TaskOverride,
    retries: int,
    started_by: str | None,
    timeout_seconds: float | None,
    allow_shrink: bool,
    placement_constraints: list[dict[str, str]] | None = None,
    placement_strategy: list[dict[str, str]] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> list[Task]:
    """RunTask, retrying placement failures with backoff; exits 125 when retries run out."""
    tasks: list[Task] = []
    attempt = 0
    while True:
        try:
            result = client.run_task(
                arn,
                count=count - len(tasks),
                overrides=overrides,
                started_by=started_by,
                timeout_seconds=timeout_seconds,
                allow_shrink=allow_shrink,
                placement_constraints=placement_constraints,
                placement_strategy=placement_strategy,
            )
        except ApiError as exc:
            if exc.status == 422 and "allowShrink" in str(exc):
                output.error(exc.message, exc.errors)
                output.info(SHRINK_HINT)
                raise typer.Exit(1) from None
            raise
        tasks += result.tasks
        if not result.failures:
            return tasks
        for f in result.failures:
            # the detail is the placement summary, which leads with the reason
            why = f.detail if f.detail.startswith(f.reason) else f"{f.reason} ({f.detail})"
            output.info(f"hatoba: could not place {f.arn}: {why}")
        if attempt >= retries:
            for t in tasks:  # the ones that did start are real; say which they are
                output.info(f"hatoba: started {t.task_id}")
            tries = f"{attempt + 1} attempt{'s' if attempt else ''}"
            raise output.fail(
                f"could not start {len(result.failures)} of {count} task(s) after {tries}",
                code=CANNOT_START,
            )
        delay = backoff_delay(attempt, rng)
        output.info(f"hatoba: retrying in {delay:.1f}s (retry {attempt + 1} of {retries})")
        sleep(delay)
        attempt += 1


def await_start(client: HatobaClient, tasks: list[Task], *, as_json: bool) -> int:
    """Wait until each task is RUNNING (or already STOPPED); print ids (json: the tasks)."""
    with output.waiting("waiting for the task to start..."):
        final = [client.wait_task(t.task_id, LastStatus.RUNNING, timeout=None) for t in tasks]
    if as_json:
        output.print_json(final[0] if len(final) == 1 else final)
    else:
        for t in final:
            sys.stdout.write(t.task_id + "\n")
        sys.stdout.flush()
    status = 0
    for t in final:
        if start_exit_status(t) != 0:
            output.error(f"task {t.task_id}: {outcome_message(t)}")
            status = start_exit_status(t)
    return status


def follow_task(client: HatobaClient, task: Task, *, prefix: bool, as_json: bool) -> int:
    """Stream the task's output until it stops; return the exit status to use.

    On Ctrl-C the task is stopped (a one-off task nobody watches would otherwise run on)."""
    if sys.stderr.isatty():
        output.info(f"hatoba: task {task.task_id}", style="dim")
    try:
        write_lines(client.stream_logs(task.task_id, follow=True), prefix=prefix, as_json=as_json)
        final = client.wait_task(task.task_id, LastStatus.STOPPED, timeout=None)
    except KeyboardInterrupt:
        stop_interrupted(client, task)
        return INTERRUPTED
    if as_json:
        sys.stdout.write(json.dumps({"task": output.to_json(final)}) + "\n")
        sys.stdout.flush()
    message = outcome_message(final)
    if message is not None:
        output.info(f"hatoba: {message}")
    return run_exit_status(final)


def stop_interrupted(client: HatobaClient, task: Task) -> None:
    output.info(f"hatoba: interrupted; stopping task {task.task_id}")
    try:
        client.stop_task(task.task_id, reason="Interrupted (Ctrl-C) during hatoba run --follow")
        with output.waiting("stopping..."):
            client.wait_task(task.task_id, LastStatus.STOPPED, timeout=STOP_WAIT_SECONDS)
    except KeyboardInterrupt:
        output.info("hatoba: not waiting for the task to stop")
