"""``hatoba scaling ...``: a service's autoscaling. ``target`` sets its bounds (and
suspends or resumes it), ``policy put|delete`` and ``schedule put|delete`` what drives it,
``describe``, ``activities`` and ``watch`` show what it does.

``policy put`` takes a whole PutScalingPolicy body (``--from-file``, JSON or YAML) or builds
a target tracking policy from shortcuts: a backlog metric (``--redis-list URL KEY``, ``--sql
URL QUERY``, ``--metric JSON``) with ``--target-per-task N`` (AverageValue), or ``--cpu P`` /
``--memory P`` (Value, percent of what the tasks reserve). The server validates it and
names any bad field by JSON path (exit 1).
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from hatoba.cli import output
from hatoba.cli.connection import session
from hatoba.cli.exitcodes import USAGE
from hatoba.cli.output import OutputFormat, OutputOption
from hatoba.cli.parsing import parse_duration
from hatoba.cli.scaling_render import (
    Sample,
    activity_table,
    scaling_panel,
    target_text,
    targets_table,
    watch_view,
)
from hatoba.cli.spec_files import load_mapping
from hatoba.client import ApiError, HatobaClient

app = typer.Typer(help="Autoscale services: bounds, policies on metrics, schedules.")
policy = typer.Typer(help="Scaling policies (target tracking or step) of a service.")
schedule = typer.Typer(help="Scheduled actions: set min/max at given times.")
app.add_typer(policy, name="policy")
app.add_typer(schedule, name="schedule")

ServiceArg = Annotated[str, typer.Argument(metavar="SERVICE", help="Service name.")]
NameArg = Annotated[str, typer.Argument(metavar="NAME", help="Policy or action name.")]
FromFileOpt = Annotated[
    str | None,
    typer.Option("--from-file", metavar="FILE", help="The whole body, JSON or YAML (- for stdin)."),
]
# which shortcut sets which field, for hints after a validation error
OPTION_FOR = {
    "targetTrackingConfiguration.metric.redisList": "--redis-list",
    "targetTrackingConfiguration.metric.sql": "--sql",
    "targetTrackingConfiguration.metric": "--metric",
    "targetTrackingConfiguration.targetValue": "--target-per-task/--cpu/--memory",
    "targetTrackingConfiguration.scaleInStabilizationSeconds": "--stabilization",
    "targetTrackingConfiguration.activationValue": "--activation",
}


def _as_json(output_: OutputFormat | None) -> bool:
    return output.output_format(output_) == OutputFormat.JSON


def _say(message: str) -> None:
    output.stdout().print(message, markup=False, highlight=False)


def _seconds(text: str | None, option: str) -> int | None:
    if text is None:
        return None
    if text.strip() in ("0", "0s"):
        return 0
    return round(parse_duration(text, option))


def _load(path: str) -> dict[str, Any]:
    return load_mapping(path, "must be a JSON object (a mapping)")


def _explain(exc: ApiError, hints: dict[str, str]) -> typer.Exit:
    output.error(exc.message, exc.errors)
    for f in exc.errors:
        for prefix, option in hints.items():
            if f.path.startswith(prefix):
                output.info(f"hint: {option} sets {f.path}")
                break
    return typer.Exit(1)


# -- the target -------------------------------------------------------------------------------
@app.command()
def target(
    service: ServiceArg,
    min_: Annotated[
        int | None, typer.Option("--min", min=0, help="minCapacity: never fewer tasks.")
    ] = None,
    max_: Annotated[
        int | None, typer.Option("--max", min=0, help="maxCapacity: never more tasks.")
    ] = None,
    suspend_in: Annotated[
        bool | None,
        typer.Option("--suspend-in/--resume-in", help="Stop (or restart) dynamic scale-in."),
    ] = None,
    suspend_out: Annotated[
        bool | None,
        typer.Option("--suspend-out/--resume-out", help="Stop (or restart) dynamic scale-out."),
    ] = None,
    suspend_scheduled: Annotated[
        bool | None,
        typer.Option(
            "--suspend-scheduled/--resume-scheduled", help="Skip (or run) scheduled actions."
        ),
    ] = None,
    zero_cooldown: Annotated[
        str | None,
        typer.Option(
            "--scale-to-zero-cooldown",
            metavar="DURATION",
            help="With --min 0: how long without work before the last task stops (5m).",
        ),
    ] = None,
    output_: OutputOption = None,
) -> None:
    """Set a service's bounds (register its scalable target), or suspend/resume it.

    Only what is given changes; --min and --max are needed the first time."""
    body: dict[str, Any] = {}
    if min_ is not None:
        body["minCapacity"] = min_
    if max_ is not None:
        body["maxCapacity"] = max_
    cooldown = _seconds(zero_cooldown, "--scale-to-zero-cooldown")
    if cooldown is not None:
        body["scaleToZeroCooldownSeconds"] = cooldown
    flags = {
        "dynamicScalingInSuspended": suspend_in,
        "dynamicScalingOutSuspended": suspend_out,
        "scheduledScalingSuspended": suspend_scheduled,
    }
    with session() as client:
        if any(v is not None for v in flags.values()):
            state = _current_suspended(client, service)
            body["suspendedState"] = state | {k: v for k, v in flags.items() if v is not None}
        if not body:
            raise output.fail("nothing to change: give --min, --max or a --suspend option", USAGE)
        try:
            registered = client.register_scalable_target(service, body)
        except ApiError as exc:
            if exc.status != 422:
                raise
            raise _explain(exc, {"minCapacity": "--min", "maxCapacity": "--max"}) from None
    if _as_json(output_):
        output.print_json(registered)
    else:
        _say(f"Scalable target {service}: {target_text(registered)}")


def _current_suspended(client: HatobaClient, service: str) -> dict[str, bool]:
    try:
        current = client.describe_scalable_target(service)
    except ApiError as exc:
        if exc.status != 404:
            raise
        return {}
    return {str(k): bool(v) for k, v in current.suspended_state.model_dump(by_alias=True).items()}


@app.command()
def remove(service: ServiceArg, output_: OutputOption = None) -> None:
    """Stop autoscaling a service: its target, policies and scheduled actions go.

    The count stays where it is."""
    with session() as client:
        removed = client.deregister_scalable_target(service)
    if _as_json(output_):
        output.print_json(removed)
    else:
        _say(f"Deregistered the scalable target of {service}")


@app.command("list")
def list_(output_: OutputOption = None) -> None:
    """Every service with a scalable target."""
    with session() as client:
        targets = client.list_scalable_targets()
    if _as_json(output_):
        output.print_json(targets)
    else:
        output.stdout().print(targets_table(targets))


# -- policies ---------------------------------------------------------------------------------
@policy.command("put")
def policy_put(
    service: ServiceArg,
    name: NameArg,
    from_file: FromFileOpt = None,
    redis_list: Annotated[
        tuple[str, str] | None,
        typer.Option("--redis-list", metavar="URL KEY", help="Backlog: LLEN of a Redis list."),
    ] = None,
    sql: Annotated[
        tuple[str, str] | None,
        typer.Option("--sql", metavar="URL QUERY", help="Backlog: a query returning a number."),
    ] = None,
    metric: Annotated[
        str | None,
        typer.Option("--metric", metavar="JSON", help="Any metric spec, e.g. '{\"rq\": {...}}'."),
    ] = None,
    per_task: Annotated[
        float | None,
        typer.Option(
            "--target-per-task", metavar="N", help="AverageValue target: backlog per task."
        ),
    ] = None,
    cpu: Annotated[
        float | None,
        typer.Option("--cpu", metavar="PERCENT", help="Track CPU utilization (% reserved)."),
    ] = None,
    memory: Annotated[
        float | None,
        typer.Option("--memory", metavar="PERCENT", help="Track memory utilization."),
    ] = None,
    stabilization: Annotated[
        str | None,
        typer.Option(
            "--stabilization", metavar="DURATION", help="Scale-in waits this long (default 5m)."
        ),
    ] = None,
    activation: Annotated[
        float | None,
        typer.Option("--activation", metavar="VALUE", help="From 0 tasks: wake above this."),
    ] = None,
    poll: Annotated[
        float | None,
        typer.Option("--poll-interval", metavar="SECONDS", help="Read the metric this often."),
    ] = None,
    no_scale_in: Annotated[
        bool, typer.Option("--disable-scale-in", help="This policy only scales out.")
    ] = False,
    output_: OutputOption = None,
) -> None:
    """Create or replace a scaling policy: --from-file, or a metric shortcut with its target."""
    shortcuts = [o for o, v in (("--redis-list", redis_list), ("--sql", sql)) if v is not None]
    others = (("--metric", metric), ("--cpu", cpu), ("--memory", memory))
    shortcuts += [o for o, v in others if v is not None]
    if from_file is not None:
        if shortcuts:
            raise output.fail(f"--from-file: give the whole policy, or {shortcuts[0]}", USAGE)
        body = _load(from_file)
    else:
        if len(shortcuts) != 1:
            raise output.fail(
                "give one metric: --redis-list, --sql, --metric, --cpu or --memory "
                "(or --from-file)",
                USAGE,
            )
        spec: dict[str, Any]
        config: dict[str, Any] = {}
        if cpu is not None or memory is not None:
            spec = {"cpu": {}} if cpu is not None else {"memory": {}}
            config = {"metricType": "Value", "targetValue": cpu if cpu is not None else memory}
            if per_task is not None:
                raise output.fail("--target-per-task: not with --cpu/--memory", USAGE)
        else:
            if redis_list is not None:
                spec = {"redisList": {"url": redis_list[0], "key": redis_list[1]}}
            elif sql is not None:
                spec = {"sql": {"url": sql[0], "query": sql[1]}}
            else:
                spec = _metric_json(metric or "")
            if per_task is None:
                raise output.fail(f"--target-per-task: required with {shortcuts[0]}", USAGE)
            config = {"metricType": "AverageValue", "targetValue": per_task}
        if poll is not None:
            spec["pollInterval"] = poll
        config["metric"] = spec
        window = _seconds(stabilization, "--stabilization")
        if window is not None:
            config["scaleInStabilizationSeconds"] = window
        if activation is not None:
            config["activationValue"] = activation
        if no_scale_in:
            config["disableScaleIn"] = True
        body = {"policyType": "TargetTrackingScaling", "targetTrackingConfiguration": config}
    with session() as client:
        try:
            put = client.put_scaling_policy(service, name, body)
        except ApiError as exc:
            if exc.status != 422:
                raise
            raise _explain(exc, {} if from_file else OPTION_FOR) from None
    if _as_json(output_):
        output.print_json(put)
    else:
        _say(f"Scaling policy {name} of {service}: {put.policy_type.value} on {_kind(put.metric)}")


def _metric_json(text: str) -> dict[str, Any]:
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        raise output.fail(f"--metric: not valid JSON: {exc.msg}", USAGE) from None
    if not isinstance(spec, dict):
        raise output.fail('--metric: a JSON object, e.g. {"rq": {"url": "redis://..."}}', USAGE)
    return spec


def _kind(metric: dict[str, Any]) -> str:
    return next((k for k in metric if k not in ("pollInterval", "timeout")), "?")


@policy.command("delete")
def policy_delete(service: ServiceArg, name: NameArg, output_: OutputOption = None) -> None:
    """Delete a scaling policy (the count stays where it is)."""
    with session() as client:
        deleted = client.delete_scaling_policy(service, name)
    if _as_json(output_):
        output.print_json(deleted)
    else:
        _say(f"Deleted scaling policy {name} of {service}")


# -- scheduled actions ------------------------------------------------------------------------
@schedule.command("put")
def schedule_put(
    service: ServiceArg,
    name: NameArg,
    expression: Annotated[
        str | None,
        typer.Option(
            "--schedule", metavar="EXPR", help="cron(0 9 ? * MON-FRI *), rate(1 hour), at(...)."
        ),
    ] = None,
    timezone: Annotated[
        str | None, typer.Option("--timezone", metavar="TZ", help="IANA zone (default UTC).")
    ] = None,
    min_: Annotated[int | None, typer.Option("--min", min=0, help="Set minCapacity.")] = None,
    max_: Annotated[int | None, typer.Option("--max", min=0, help="Set maxCapacity.")] = None,
    start: Annotated[
        str | None, typer.Option("--start-time", metavar="ISO", help="Not before (with offset).")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--end-time", metavar="ISO", help="Not after (with offset).")
    ] = None,
    from_file: FromFileOpt = None,
    output_: OutputOption = None,
) -> None:
    """Create or replace a scheduled action: set --min/--max at each --schedule time."""
    body = _load(from_file) if from_file is not None else {}
    for key, value in (
        ("schedule", expression),
        ("timezone", timezone),
        ("minCapacity", min_),
        ("maxCapacity", max_),
        ("startTime", start),
        ("endTime", end),
    ):
        if value is not None:
            body[key] = value
    if "schedule" not in body:
        raise output.fail("missing --schedule (or schedule in --from-file)", USAGE)
    hints = {"schedule": "--schedule", "timezone": "--timezone", "minCapacity": "--min"}
    hints |= {"maxCapacity": "--max", "startTime": "--start-time", "endTime": "--end-time"}
    with session() as client:
        try:
            put = client.put_scheduled_action(service, name, body)
        except ApiError as exc:
            if exc.status != 422:
                raise
            raise _explain(exc, {} if from_file else hints) from None
    if _as_json(output_):
        output.print_json(put)
    else:
        _say(f"Scheduled action {name} of {service}: {put.schedule} ({put.timezone})")


@schedule.command("delete")
def schedule_delete(service: ServiceArg, name: NameArg, output_: OutputOption = None) -> None:
    """Delete a scheduled action (the bounds it set stay)."""
    with session() as client:
        deleted = client.delete_scheduled_action(service, name)
    if _as_json(output_):
        output.print_json(deleted)
    else:
        _say(f"Deleted scheduled action {name} of {service}")


# -- reading ----------------------------------------------------------------------------------
@app.command()
def describe(service: ServiceArg, output_: OutputOption = None) -> None:
    """Show a service's autoscaling: bounds, policies and their metric now, schedules.

    Each policy's metric value now (or why it cannot be read), scheduled actions with their
    next fire time, and the last decision."""
    with session() as client:
        desc = client.describe_scaling(service)
    if _as_json(output_):
        output.print_json(desc)
    else:
        output.stdout().print(scaling_panel(desc))


@app.command()
def activities(
    service: ServiceArg,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=500, help="How many.")] = 20,
    output_: OutputOption = None,
) -> None:
    """List autoscaling's changes, newest first: time, metric, policy, from → to, reason."""
    with session() as client:
        found = client.scaling_activities(service, limit=limit)
    if _as_json(output_):
        output.print_json(found)
    else:
        output.stdout().print(activity_table(found))


@app.command()
def watch(
    service: ServiceArg,
    window: Annotated[
        str, typer.Option("--window", metavar="DURATION", help="How much history to draw.")
    ] = "3m",
    interval: Annotated[
        str, typer.Option("--interval", metavar="DURATION", help="Time between samples.")
    ] = "1s",
    samples: Annotated[
        int | None, typer.Option("--samples", min=1, help="Stop after this many samples.")
    ] = None,
    output_: OutputOption = None,
) -> None:
    """Chart the metric, desired and running counts live, until Ctrl-C.

    With -o json: one JSON sample a line (NDJSON)."""
    span = parse_duration(window, "--window")
    every = parse_duration(interval, "--interval")
    with session() as client:
        try:
            if _as_json(output_):
                _watch_json(client, service, every, samples)
            else:
                _watch_live(client, service, span, every, samples)
        except KeyboardInterrupt:
            return


def _watch_json(client: HatobaClient, service: str, every: float, limit: int | None) -> None:
    taken = 0
    while limit is None or taken < limit:
        started = time.monotonic()
        sample = Sample.of(client.describe_scaling(service), started, datetime.now(UTC))
        sys.stdout.write(json.dumps(sample.to_json(), ensure_ascii=False) + "\n")
        sys.stdout.flush()
        taken += 1
        if limit is None or taken < limit:
            time.sleep(max(0.0, every - (time.monotonic() - started)))


def _watch_live(
    client: HatobaClient, service: str, span: float, every: float, limit: int | None
) -> None:
    from rich.live import Live

    console = output.stdout()
    kept: list[Sample] = []
    taken = 0
    with Live(console=console, auto_refresh=False, transient=False) as live:
        while limit is None or taken < limit:
            started = time.monotonic()
            desc = client.describe_scaling(service)
            kept.append(Sample.of(desc, started, datetime.now(UTC)))
            kept = [s for s in kept if s.at >= started - span]
            taken += 1
            view = watch_view(
                service,
                kept,
                started,
                window=span,
                width=console.width,
                max_capacity=desc.scalable_target.max_capacity,
                policies=[p.policy_name for p in desc.policies],
            )
            live.update(view, refresh=True)
            if limit is None or taken < limit:
                time.sleep(max(0.0, every - (time.monotonic() - started)))
