"""Building a job's spec for ``hatoba job create|update``: the options, ``--from-file``,
and validation here (every bad field named, with the option that sets it) before anything is
sent; a 422 from the server gets the same hints."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from hatoba.cli import output
from hatoba.cli.exitcodes import USAGE
from hatoba.cli.parsing import parse_duration
from hatoba.cli.spec_files import load_mapping
from hatoba.client import ApiError
from hatoba.model.errors import FieldError
from hatoba.model.job import JobSpec

BOOKKEEPING = ("createdAt", "updatedAt", "lastTick", "version")  # in describe -o json
OPTION_FOR = {
    "jobName": "NAME",
    "taskDefinition": "--task-definition",
    "schedule": "--schedule",
    "timezone": "--timezone",
    "flexibleWindowMinutes": "--flexible-window",
    "overlapPolicy": "--overlap",
    "missedRunPolicy": "--missed",
    "startingDeadlineSeconds": "--starting-deadline",
    "retry.maxAttempts": "--retries",
    "retry.retryOnFailure": "--retry-on-failure",
    "retry.backoffSeconds": "--backoff",
    "timeoutSeconds": "--timeout",
    "chain.onSuccess": "--on-success",
    "chain.onFailure": "--on-failure",
    "chain.always": "--always",
    "notifications": "--webhook/--webhook-format/--webhook-event",
    "historyRetentionDays": "--history-days",
}

NameArg = Annotated[str, typer.Argument(metavar="NAME", help="Job name.")]
TaskDefOpt = Annotated[
    str | None,
    typer.Option("--task-definition", "-t", metavar="FAMILY[:REV]", help="Task definition."),
]
ScheduleOpt = Annotated[
    str | None,
    typer.Option(
        "--schedule", "-s", metavar="EXPR",
        help="cron(0 9 * * ? *) (AWS), '0 9 * * *' (classic), rate(5 minutes), "
        "at(2030-01-31T09:00:00); '' for none (manual or chained runs only).",
    ),
]  # fmt: skip
TimezoneOpt = Annotated[
    str | None,
    typer.Option("--timezone", "--tz", metavar="ZONE", help="IANA time zone (default UTC)."),
]
WindowOpt = Annotated[
    int | None,
    typer.Option("--flexible-window", metavar="MIN", help="Delay each run by up to MIN minutes."),
]
OverlapOpt = Annotated[
    str | None,
    typer.Option(
        "--overlap", metavar="POLICY",
        help="While a run is active, a tick: Allow, Forbid (skip it; default) or Replace.",
    ),
]  # fmt: skip
MissedOpt = Annotated[
    str | None,
    typer.Option(
        "--missed", metavar="POLICY",
        help="Ticks missed while no control plane ran: none, latest (default) or all.",
    ),
]  # fmt: skip
DeadlineOpt = Annotated[
    str | None,
    typer.Option(
        "--starting-deadline", metavar="DURATION", help="How late a tick may still start."
    ),
]
RetriesOpt = Annotated[
    int | None,
    typer.Option("--retries", metavar="N", min=0, max=9, help="Attempts after the first."),
]
RetryFailureOpt = Annotated[
    bool | None,
    typer.Option(
        "--retry-on-failure/--no-retry-on-failure",
        help="Retry non-zero exits and timeouts too (launch failures always are).",
        show_default=False,
    ),
]
BackoffOpt = Annotated[
    str | None,
    typer.Option("--backoff", metavar="DURATION", help="Base of the retry backoff (10s)."),
]
TimeoutOpt = Annotated[
    str | None,
    typer.Option("--timeout", metavar="DURATION", help="Stop an attempt after this long."),
]
OnSuccessOpt = Annotated[
    list[str] | None,
    typer.Option("--on-success", metavar="JOB", help="Start JOB after a run succeeds."),
]
OnFailureOpt = Annotated[
    list[str] | None,
    typer.Option("--on-failure", metavar="JOB", help="Start JOB after a run fails."),
]
AlwaysOpt = Annotated[
    list[str] | None,
    typer.Option("--always", metavar="JOB", help="Start JOB after a run ends either way."),
]
WebhookOpt = Annotated[
    list[str] | None,
    typer.Option("--webhook", metavar="URL", help="Notify this URL (repeatable)."),
]
WebhookFormatOpt = Annotated[
    str | None,
    typer.Option("--webhook-format", metavar="FORMAT", help="slack or json (default)."),
]
WebhookEventOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--webhook-event", metavar="EVENT",
        help="start, success, failure, retriesExhausted (default: failure, retriesExhausted).",
    ),
]  # fmt: skip
HistoryOpt = Annotated[
    int | None, typer.Option("--history-days", metavar="DAYS", help="Keep runs this long.")
]
FromFileOpt = Annotated[
    str | None,
    typer.Option(
        "--from-file", metavar="FILE", help="A job as JSON or YAML (- for stdin); options win."
    ),
]
ReplaceFileOpt = Annotated[
    str | None,
    typer.Option(
        "--from-file",
        metavar="FILE",
        help="Replace the whole spec with this file's (JSON or YAML); options win.",
    ),
]
FollowOpt = Annotated[
    bool, typer.Option("--follow", "-f", help="Stream its output; exit with its exit code.")
]


# -- input ----------------------------------------------------------------------------------
def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out


def _hint(fields: list[FieldError]) -> None:
    for f in fields:
        for prefix, option in OPTION_FOR.items():
            if f.path.startswith(prefix) and option != "NAME":
                output.info(f"hint: {option} sets {f.path}")
                break


def validated(data: dict[str, Any]) -> JobSpec:
    try:
        return JobSpec.model_validate(data)
    except ValidationError as exc:
        fields = [FieldError(_path(tuple(e["loc"])), e["msg"]) for e in exc.errors()]
        _hint(fields)
        raise output.fail("invalid job", fields=fields) from None


@contextmanager
def explained() -> Iterator[None]:
    """A 422 from the server: its fields, plus which option sets each."""
    try:
        yield
    except ApiError as exc:
        if exc.status != 422:
            raise
        output.error(exc.message, exc.errors)
        _hint(exc.errors)
        raise typer.Exit(1) from None


def load_file(path: str) -> dict[str, Any]:
    data = load_mapping(path, "a job must be a mapping (jobName, taskDefinition, ...)")
    for key in BOOKKEEPING:
        data.pop(key, None)
    return data


def overlay(
    data: dict[str, Any],
    *,
    task_definition: str | None = None,
    schedule: str | None = None,
    timezone: str | None = None,
    flexible_window: int | None = None,
    overlap: str | None = None,
    missed: str | None = None,
    starting_deadline: str | None = None,
    retries: int | None = None,
    retry_on_failure: bool | None = None,
    backoff: str | None = None,
    timeout: str | None = None,
    on_success: list[str] | None = None,
    on_failure: list[str] | None = None,
    always: list[str] | None = None,
    webhook: list[str] | None = None,
    webhook_format: str | None = None,
    webhook_event: list[str] | None = None,
    history_days: int | None = None,
) -> dict[str, Any]:
    """``data`` (wire form) with the options given laid over it."""
    simple = {
        "taskDefinition": task_definition,
        "timezone": timezone,
        "flexibleWindowMinutes": flexible_window,
        "overlapPolicy": overlap,
        "missedRunPolicy": missed,
        "historyRetentionDays": history_days,
    }
    data.update({k: v for k, v in simple.items() if v is not None})
    if schedule is not None:
        data["schedule"] = schedule.strip() or None
    if starting_deadline is not None:
        data["startingDeadlineSeconds"] = round(
            parse_duration(starting_deadline, "--starting-deadline")
        )
    if timeout is not None:
        data["timeoutSeconds"] = parse_duration(timeout, "--timeout")
    retry = dict(data.get("retry") or {})
    if retries is not None:
        retry["maxAttempts"] = retries + 1
    if retry_on_failure is not None:
        retry["retryOnFailure"] = retry_on_failure
    if backoff is not None:
        retry["backoffSeconds"] = parse_duration(backoff, "--backoff")
    if retry:
        data["retry"] = retry
    chain = dict(data.get("chain") or {})
    for key, names in (("onSuccess", on_success), ("onFailure", on_failure), ("always", always)):
        if names is not None:
            chain[key] = [n for n in names if n]
    if chain:
        data["chain"] = chain
    if webhook is not None or webhook_format is not None or webhook_event is not None:
        if webhook is None and not data.get("notifications"):
            raise output.fail("--webhook-format/--webhook-event need --webhook URL", USAGE)
        hooks: list[dict[str, Any]] = (
            [{"url": u} for u in webhook if u]
            if webhook is not None
            else [dict(n) for n in data["notifications"]]
        )
        for hook in hooks:
            if webhook_format is not None:
                hook["format"] = webhook_format
            if webhook_event is not None:
                hook["events"] = [e for item in webhook_event for e in item.split(",") if e]
        data["notifications"] = hooks
    return data


SPEC_OPTIONS = (
    "task_definition", "schedule", "timezone", "flexible_window", "overlap", "missed",
    "starting_deadline", "retries", "retry_on_failure", "backoff", "timeout", "on_success",
    "on_failure", "always", "webhook", "webhook_format", "webhook_event", "history_days",
)  # fmt: skip


def options_of(scope: dict[str, Any]) -> dict[str, Any]:
    """The spec options among a command's arguments (its ``locals()``)."""
    return {k: scope[k] for k in SPEC_OPTIONS if k in scope}
