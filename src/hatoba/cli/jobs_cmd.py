"""``hatoba job ...``: scheduled and batch jobs: create, update, delete, enable, disable,
list, describe, next fire times, run now (and follow), history, logs, events, cancel.

``create`` and ``update`` build the job's spec from ``--from-file`` (JSON or YAML: a JobSpec,
or ``job describe -o json``'s output) with the options laid over it, check it here (every bad
field named, before anything is sent), then the server checks the rest (schedule, time zone,
task definition, chained jobs). ``update`` starts from the job as it is: only what is given
changes.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from typing import Annotated

import typer

from hatoba.cli import output
from hatoba.cli.connection import session
from hatoba.cli.events_out import print_events
from hatoba.cli.exitcodes import INTERRUPTED, USAGE
from hatoba.cli.jobs_follow import (
    cancel_interrupted,
    finish_followed,
    follow_run,
    outcome,
    run_exit_status,
    task_attempts,
)
from hatoba.cli.jobs_render import (
    history_table,
    job_panel,
    job_table,
    next_table,
    run_panel,
    utc,
)
from hatoba.cli.jobs_spec import (
    AlwaysOpt,
    BackoffOpt,
    DeadlineOpt,
    FollowOpt,
    FromFileOpt,
    HistoryOpt,
    MissedOpt,
    NameArg,
    OnFailureOpt,
    OnSuccessOpt,
    OverlapOpt,
    ReplaceFileOpt,
    RetriesOpt,
    RetryFailureOpt,
    ScheduleOpt,
    TaskDefOpt,
    TimeoutOpt,
    TimezoneOpt,
    WebhookEventOpt,
    WebhookFormatOpt,
    WebhookOpt,
    WindowOpt,
    explained,
    load_file,
    options_of,
    overlay,
    validated,
)
from hatoba.cli.logs_out import write_lines
from hatoba.cli.output import OutputFormat, OutputOption
from hatoba.client import ApiError, HatobaClient
from hatoba.model.errors import ValidationFailed
from hatoba.model.job import Job, JobRun
from hatoba.model.schedule import parse_schedule

app = typer.Typer(help="Run a task definition on a schedule, on demand, or after another job.")

FOLLOW_SECONDS = 1.0
RUN_ID_PREFIX = "jr-"


def _show(job: Job, output_: OutputFormat | None, verb: str) -> None:
    if output.output_format(output_) == OutputFormat.JSON:
        output.print_json(job)
        return
    what = job.schedule or "no schedule"
    state = "" if job.enabled else ", disabled"
    output.stdout().print(
        f"{verb} job {job.job_name} ({job.task_definition}, {what} {job.timezone}{state})",
        markup=False,
        highlight=False,
    )


# -- declaring --------------------------------------------------------------------------------
@app.command()
def create(
    name: Annotated[
        str | None, typer.Argument(metavar="NAME", help="Job name (or jobName in --from-file).")
    ] = None,
    task_definition: TaskDefOpt = None,
    schedule: ScheduleOpt = None,
    timezone: TimezoneOpt = None,
    flexible_window: WindowOpt = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Create it disabled.")] = False,
    overlap: OverlapOpt = None,
    missed: MissedOpt = None,
    starting_deadline: DeadlineOpt = None,
    retries: RetriesOpt = None,
    retry_on_failure: RetryFailureOpt = None,
    backoff: BackoffOpt = None,
    timeout: TimeoutOpt = None,
    on_success: OnSuccessOpt = None,
    on_failure: OnFailureOpt = None,
    always: AlwaysOpt = None,
    webhook: WebhookOpt = None,
    webhook_format: WebhookFormatOpt = None,
    webhook_event: WebhookEventOpt = None,
    history_days: HistoryOpt = None,
    from_file: FromFileOpt = None,
    output_: OutputOption = None,
) -> None:
    """Create a job: a task definition run on --schedule (in --timezone), on demand
    (`hatoba job run`) or after another job (--on-success/--on-failure there)."""
    data = load_file(from_file) if from_file is not None else {}
    if name is not None:
        data["jobName"] = name
    if disabled:
        data["enabled"] = False
    overlay(data, **options_of(locals()))
    if "jobName" not in data:
        raise output.fail("missing NAME (or jobName in --from-file)", USAGE)
    if "taskDefinition" not in data:
        raise output.fail("missing --task-definition (or taskDefinition in --from-file)", USAGE)
    spec = validated(data)
    with session() as client, explained():
        job = client.create_job(spec)
    _show(job, output_, "Created")


@app.command()
def update(
    name: NameArg,
    task_definition: TaskDefOpt = None,
    schedule: ScheduleOpt = None,
    timezone: TimezoneOpt = None,
    flexible_window: WindowOpt = None,
    overlap: OverlapOpt = None,
    missed: MissedOpt = None,
    starting_deadline: DeadlineOpt = None,
    retries: RetriesOpt = None,
    retry_on_failure: RetryFailureOpt = None,
    backoff: BackoffOpt = None,
    timeout: TimeoutOpt = None,
    on_success: OnSuccessOpt = None,
    on_failure: OnFailureOpt = None,
    always: AlwaysOpt = None,
    webhook: WebhookOpt = None,
    webhook_format: WebhookFormatOpt = None,
    webhook_event: WebhookEventOpt = None,
    history_days: HistoryOpt = None,
    from_file: ReplaceFileOpt = None,
    output_: OutputOption = None,
) -> None:
    """Change a job: only the options given change (--from-file replaces the whole spec).
    A new schedule or time zone counts ticks from now; runs in progress carry on."""
    with session() as client:
        if from_file is not None:
            data = load_file(from_file)
            data.setdefault("enabled", client.describe_job(name).enabled)
        else:
            data = client.describe_job(name).spec().wire()
        data["jobName"] = name
        overlay(data, **options_of(locals()))
        spec = validated(data)
        with explained():
            job = client.update_job(spec)
    _show(job, output_, "Updated")


@app.command()
def delete(name: NameArg, output_: OutputOption = None) -> None:
    """Delete a job with its history (its active runs are cancelled first)."""
    with session() as client:
        job = client.delete_job(name)
    if output.output_format(output_) == OutputFormat.JSON:
        output.print_json(job)
    else:
        output.stdout().print(f"Deleted job {name}", markup=False, highlight=False)


@app.command()
def enable(name: NameArg, output_: OutputOption = None) -> None:
    """Let the schedule fire again (from now on: ticks while disabled are not made up)."""
    with session() as client:
        job = client.enable_job(name)
    _show(job, output_, "Enabled")


@app.command()
def disable(name: NameArg, output_: OutputOption = None) -> None:
    """Stop scheduled runs (runs in progress carry on; `hatoba job run` still works)."""
    with session() as client:
        job = client.enable_job(name, enabled=False)
    _show(job, output_, "Disabled")


# -- looking --------------------------------------------------------------------------------
def _next_fire(job: Job, now: datetime) -> datetime | None:
    if job.schedule is None:
        return None
    try:
        schedule = parse_schedule(job.schedule, job.timezone)
    except ValidationFailed:
        return None
    return schedule.next_after(max(now, job.last_tick or now))


@app.command("list")
def list_(output_: OutputOption = None) -> None:
    """List jobs with their schedule and next fire time (in the job's time zone)."""
    with session() as client:
        jobs = client.list_jobs()
    if output.output_format(output_) == OutputFormat.JSON:
        output.print_json(jobs)
        return
    now = datetime.now(UTC)
    output.stdout().print(job_table(jobs, {j.job_name: _next_fire(j, now) for j in jobs}))


@app.command()
def describe(
    target: Annotated[str, typer.Argument(metavar="NAME|RUN_ID", help="A job, or one run.")],
    output_: OutputOption = None,
) -> None:
    """Show a job (spec, next fire times, last runs, events), or a run with its attempts."""
    as_json = output.output_format(output_) == OutputFormat.JSON
    with session() as client:
        run = _maybe_run(client, target)
        if run is not None:
            if as_json:
                output.print_json(run)
            else:
                zone = client.describe_job(run.job_name).timezone
                output.stdout().print(run_panel(run, zone))
            return
        job = client.describe_job(target)
        if as_json:
            output.print_json(job)
            return
        nxt = client.job_next(target, 5)
        runs = client.job_runs(target, limit=5)
        events = client.job_events(target, limit=10)
    output.stdout().print(job_panel(job, nxt, runs, events))


def _maybe_run(client: HatobaClient, target: str) -> JobRun | None:
    if not target.startswith(RUN_ID_PREFIX):
        return None
    try:
        return client.job_run(target)
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise


@app.command("next")
def next_(
    name: NameArg,
    count: Annotated[int, typer.Option("-n", "--count", min=1, max=100, help="How many.")] = 5,
    after: Annotated[
        str | None,
        typer.Option(metavar="TIME", help="From this RFC 3339 instant (default now)."),
    ] = None,
    output_: OutputOption = None,
) -> None:
    """The next fire times, in the job's time zone and in UTC (daylight saving time as
    EventBridge: a local time that does not exist is skipped, a repeated one runs once)."""
    start = _instant(after, "--after") if after is not None else None
    with session() as client:
        nf = client.job_next(name, count, after=start)
    if output.output_format(output_) == OutputFormat.JSON:
        output.print_json(
            {
                "jobName": nf.job_name,
                "schedule": nf.schedule,
                "timezone": nf.timezone,
                "fireTimes": [utc(t) for t in nf.fire_times],
            }
        )
        return
    if not nf.fire_times:
        why = "it has no schedule" if nf.schedule is None else f"{nf.schedule} fires no more"
        output.info(f"job {name}: no fire times ({why})")
        return
    output.stdout().print(next_table(nf))
    if nf.flexible_window_minutes:
        output.info(f"each run starts up to {nf.flexible_window_minutes} min later (window)")


def _instant(text: str, option: str) -> datetime:
    try:
        ts = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"{option}: {text!r} is not RFC 3339") from None
    if ts.tzinfo is None:
        raise typer.BadParameter(f"{option}: {text!r}: give a time zone (Z or +09:00)")
    return ts


@app.command()
def history(
    name: NameArg,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000, help="How many.")] = 20,
    before: Annotated[
        str | None, typer.Option(metavar="RUN_ID", help="Only runs older than this one.")
    ] = None,
    output_: OutputOption = None,
) -> None:
    """A job's runs, newest first: trigger, tick, status, attempts, exit code, times, why."""
    with session() as client:
        runs = client.job_runs(name, limit=limit, before=before)
        if output.output_format(output_) == OutputFormat.JSON:
            output.print_json(runs)
            return
        zone = client.describe_job(name).timezone
    output.stdout().print(history_table(runs, zone))


@app.command()
def events(
    name: NameArg,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=100, help="How many.")] = 50,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events (Ctrl-C ends).")
    ] = False,
    output_: OutputOption = None,
) -> None:
    """A job's events (skipped ticks, chain and webhook problems), oldest first."""
    as_json = output.output_format(output_) == OutputFormat.JSON
    with session() as client:
        shown = client.job_events(name, limit=limit)[::-1]
        if as_json and not follow:
            output.print_json(shown)
            return
        print_events(shown, as_json)
        last = shown[-1].id if shown else None
        while follow:
            time.sleep(FOLLOW_SECONDS)
            new = client.job_events(name, after_id=last)[::-1]
            print_events(new, as_json)
            last = new[-1].id if new else last


# -- running --------------------------------------------------------------------------------
@app.command()
def run(
    name: NameArg,
    follow: FollowOpt = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for it to finish; exit with its exit code.")
    ] = False,
    prefix: Annotated[
        bool, typer.Option("--prefix", help="With --follow, prefix lines with 'container | '.")
    ] = False,
    output_: OutputOption = None,
) -> None:
    """Start a run now (also of a disabled job, whatever the overlap policy). With --follow,
    stream every attempt's output and exit with the run's exit code (like `hatoba run`:
    125 could not start, 124 timed out, 123 lost, 130 interrupted: the run is cancelled)."""
    as_json = output.output_format(output_) == OutputFormat.JSON
    with session() as client:
        started = client.run_job(name)
        if not follow and not wait:
            if as_json:
                output.print_json(started)
            else:
                sys.stdout.write(started.run_id + "\n")
            return
        try:
            if follow:
                done = follow_run(client, started, prefix=prefix, as_json=as_json)
            else:
                with output.waiting(f"waiting for run {started.run_id}..."):
                    done = client.wait_job_run(started.run_id, finished=True)
        except KeyboardInterrupt:
            cancel_interrupted(client, started)
            raise typer.Exit(INTERRUPTED) from None
    if follow:
        raise typer.Exit(finish_followed(done, as_json=as_json))
    if as_json:
        output.print_json(done)
    else:
        sys.stdout.write(done.run_id + "\n")
        output.info(f"hatoba: {outcome(done)}")
    raise typer.Exit(run_exit_status(done))


@app.command()
def logs(
    target: Annotated[
        str, typer.Argument(metavar="NAME|RUN_ID", help="A job (its latest run) or a run.")
    ],
    attempt: Annotated[
        int | None, typer.Option("--attempt", "-a", min=1, help="Only this attempt (1 = first).")
    ] = None,
    follow: FollowOpt = False,
    prefix: Annotated[
        bool, typer.Option("--prefix", help="Prefix lines with 'container | '.")
    ] = False,
    output_: OutputOption = None,
) -> None:
    """A run's output, every attempt in order (or --attempt N); for a job, its latest run
    that started a task. With --follow, until the run has finished."""
    as_json = output.output_format(output_) == OutputFormat.JSON
    with session() as client:
        run = _maybe_run(client, target) or _latest_run(client, target)
        ran = [a for a in task_attempts(run) if a.task_id is not None]
        if attempt is not None and attempt > len(ran) and not (follow and run.active):
            raise output.fail(f"run {run.run_id} has {len(ran)} attempt(s); no attempt {attempt}")
        if follow:
            follow_run(client, run, prefix=prefix, as_json=as_json, only=attempt)
            return
        for n, a in enumerate(ran, 1):
            if attempt is not None and n != attempt:
                continue
            assert a.task_id is not None
            if len(ran) > 1 and attempt is None:
                output.info(f"hatoba: attempt {n}: task {a.task_id}", style="dim")
            write_lines(client.stream_logs(a.task_id), prefix=prefix, as_json=as_json)


def _latest_run(client: HatobaClient, name: str) -> JobRun:
    for found in client.job_runs(name, limit=50):
        if found.task_ids or found.active:
            return found
    raise output.fail(f"job {name} has no run that started a task yet")


@app.command()
def cancel(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="The run to cancel.")],
    reason: Annotated[str | None, typer.Option(help="Recorded as the run's reason.")] = None,
    output_: OutputOption = None,
) -> None:
    """Cancel a run: its task is stopped, no retry, no chained job."""
    with session() as client:
        done = client.cancel_job_run(run_id, reason)
    if output.output_format(output_) == OutputFormat.JSON:
        output.print_json(done)
    else:
        output.stdout().print(
            f"run {done.run_id}: {done.status.value}", markup=False, highlight=False
        )
