"""``hatoba exec``: run a command inside a running task's container (like ``docker exec``)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from hatoba.cli.connection import session
from hatoba.cli.exitcodes import INTERRUPTED, process_exit_status
from hatoba.cli.output import OutputOption


def exec_(
    task: Annotated[str, typer.Argument(help="Task id or unique prefix.")],
    command: Annotated[list[str], typer.Argument(metavar="-- CMD...", help="Command to run.")],
    container: Annotated[
        str | None, typer.Option(help="Container (default: the first essential one).")
    ] = None,
    tty: Annotated[
        bool | None,
        typer.Option(
            "--tty/--no-tty",
            "-t/-T",
            help="Allocate a terminal (default: when stdin and stdout are terminals).",
            show_default=False,
        ),
    ] = None,
    output_: OutputOption = None,
) -> None:
    """Run CMD in the task's container; exit with its exit code."""
    del output_  # exec's output is the command's own bytes
    use_tty = tty if tty is not None else sys.stdin.isatty() and sys.stdout.isatty()
    with session() as client:
        try:
            code = client.exec(task, list(command), container=container, tty=use_tty)
        except KeyboardInterrupt:
            raise typer.Exit(INTERRUPTED) from None
    raise typer.Exit(process_exit_status(code))
