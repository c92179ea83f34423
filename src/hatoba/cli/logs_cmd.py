"""``hatoba logs TARGET``: a task's logs, or a whole service's or job's, searched and followed."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from hatoba.cli import output
from hatoba.cli.connection import session
from hatoba.cli.logs_out import TaskPrefixes, write_lines
from hatoba.cli.output import OutputFormat, OutputOption

GROUP_PREFIXES = ("service/", "job/")
STREAMS = ("stdout", "stderr", "file")
TASK_PREFIX_WIDTH = 8


def _check_stream(value: str | None) -> str | None:
    if value is not None and value not in STREAMS and not value.startswith("file:"):
        raise typer.BadParameter(f"--stream: {value!r}: want stdout, stderr, file or file:NAME")
    return value


def logs(
    target: Annotated[
        str,
        typer.Argument(
            help="A task id (or unique prefix), service/NAME or job/NAME.", show_default=False
        ),
    ],
    follow: Annotated[
        bool,
        typer.Option(
            "--follow",
            "-f",
            help="Keep printing: until the task stops; for a service or job, its new tasks "
            "too, until interrupted.",
        ),
    ] = False,
    since: Annotated[
        str | None, typer.Option(help="Only lines after: a duration ago (10m, 2h) or RFC 3339.")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Only lines before: a duration ago or RFC 3339.")
    ] = None,
    grep: Annotated[
        str | None, typer.Option("--grep", "-g", help="Only lines matching this regex.")
    ] = None,
    container: Annotated[str | None, typer.Option("--container", "-c", help="Only it.")] = None,
    stream: Annotated[
        str | None,
        typer.Option(
            help="Only stdout, stderr, file (every tailed file) or file:NAME.",
            callback=_check_stream,
        ),
    ] = None,
    tail: Annotated[
        int | None, typer.Option("--tail", "-n", min=0, help="Only the last N lines first.")
    ] = None,
    raw: Annotated[
        bool,
        typer.Option(
            "--raw",
            help="Records as stored: a line longer than the capture maximum as its fragments "
            '(JSON: "partial": true), no multiline joining.',
        ),
    ] = False,
    timestamps: Annotated[
        bool, typer.Option("--timestamps", "-t", help="Prefix each line with its UTC time.")
    ] = False,
    prefix: Annotated[
        bool, typer.Option("--prefix", help="Prefix each line with 'container | '.")
    ] = False,
    output_: OutputOption = None,
) -> None:
    """Print logs: exact bytes by default (a service's or job's lines prefixed with their
    task, interleaved by time), NDJSON with --output json."""
    as_json = output.output_format(output_) == OutputFormat.JSON
    group = target.startswith(GROUP_PREFIXES)
    color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    options: dict[str, str | int | bool | None] = {
        "since": since,
        "until": until,
        "grep": grep,
        "container": container,
        "stream": stream,
        "tail": tail,
        "raw": raw,
    }
    with session() as client:
        try:
            write_lines(
                client.logs(target, follow=follow, options=options),
                prefix=prefix,
                timestamps=timestamps,
                as_json=as_json,
                task_prefix=TaskPrefixes(TASK_PREFIX_WIDTH, color) if group else None,
            )
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        except BrokenPipeError:  # `hatoba logs ... | head`: quietly done
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(0) from None
