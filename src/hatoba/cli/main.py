"""The ``hatoba`` command: wires the sub-commands and turns expected errors into one
``error: ...`` line and exit status 1 instead of a traceback."""

from __future__ import annotations

import sys

import typer

from hatoba import __version__
from hatoba.cli import (
    access_cmd,
    jobs_cmd,
    nodes,
    output,
    params,
    scaling_cmd,
    server_cmd,
    services_cmd,
    taskdefs,
    tasks,
)
from hatoba.cli.app_cmd import apply, diff, up
from hatoba.cli.connection import NoServer
from hatoba.cli.exec_cmd import exec_
from hatoba.cli.logs_cmd import logs
from hatoba.cli.output import OutputFormat, OutputOption
from hatoba.cli.run import run
from hatoba.client import ApiError, ClientError
from hatoba.config import ConfigError

app = typer.Typer(
    name="hatoba",
    help="Run services, workers and one-off tasks on your own machines, the ECS way.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(server_cmd.app, name="server")
app.add_typer(taskdefs.app, name="taskdef")
app.add_typer(tasks.app, name="task")
app.add_typer(nodes.app, name="node")
app.add_typer(services_cmd.app, name="service")
app.add_typer(scaling_cmd.app, name="scaling")
app.add_typer(jobs_cmd.app, name="job")
app.add_typer(params.app, name="param")
app.add_typer(access_cmd.tokens, name="token")
app.command("audit")(access_cmd.audit)
app.command("run")(run)
app.command("exec")(exec_)
app.command("logs")(logs)
app.command("diff")(diff)
app.command("apply")(apply)
app.command("up")(up)


@app.callback()
def _global(output_: OutputOption = None) -> None:
    """Options given before the command apply to every command (``hatoba -o json ...``)."""
    output.set_default_format(output_)


@app.command()
def version(output_: OutputOption = None) -> None:
    """Print hatoba's version."""
    if output.output_format(output_) == OutputFormat.JSON:
        output.print_json({"version": __version__})
    else:
        sys.stdout.write(f"hatoba {__version__}\n")


def main(argv: list[str] | None = None) -> None:
    """Entry point (``hatoba = hatoba.cli.main:main``)."""
    try:
        app(args=argv, prog_name="hatoba")
    except ApiError as exc:
        output.error(exc.message, exc.errors)
        sys.exit(1)
    except (ClientError, NoServer, ConfigError) as exc:
        output.error(str(exc))
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
