"""``hatoba server``: the control plane in the foreground (and ``server status``)."""

from __future__ import annotations

import dataclasses
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from hatoba.cli import output
from hatoba.cli.output import OutputFormat, OutputOption
from hatoba.client.discovery import read_server_file, running_server
from hatoba.config import DEFAULT_PORT, Settings

if TYPE_CHECKING:
    from hatoba.server import Running

app = typer.Typer(
    help="Run the control plane in the foreground (Ctrl-C stops it; tasks keep running).",
    invoke_without_command=True,
)


@app.callback()
def server(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[
        int | None, typer.Option(min=0, max=65535, help=f"Port (default {DEFAULT_PORT}).")
    ] = None,
    tls_cert: Annotated[
        Path | None, typer.Option(help="PEM certificate: serve https (with --tls-key).")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option(help="PEM private key for --tls-cert.")] = None,
) -> None:
    """Run the control plane: API, scheduler, and the agent for this machine."""
    if ctx.invoked_subcommand is not None:
        return
    from hatoba.server import AlreadyRunning, run_server

    settings = Settings.from_env()
    settings = dataclasses.replace(
        settings,
        host=host if host is not None else settings.host,
        port=port if port is not None else settings.port,
        tls_cert=tls_cert if tls_cert is not None else settings.tls_cert,
        tls_key=tls_key if tls_key is not None else settings.tls_key,
    )
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

    def ready(running: Running) -> None:
        output.info(f"hatoba server listening on {running.url}")
        output.info(f"data directory: {settings.home}")
        output.info(f"API token file: {settings.layout.token_file}")

    try:
        run_server(settings, on_ready=ready)
    except AlreadyRunning as exc:
        raise output.fail(str(exc)) from None
    except OSError as exc:
        raise output.fail(f"cannot listen on {settings.host}:{settings.port}: {exc}") from None
    except KeyboardInterrupt:
        pass  # uvicorn re-raises the SIGINT it handled, after a graceful shutdown
    output.info("hatoba server stopped (tasks keep running; they are re-adopted on restart)")


@app.command()
def status(output_: OutputOption = None) -> None:
    """Whether a server is running for this data directory, and where."""
    settings = Settings.from_env()
    found = running_server(settings.layout)
    published = read_server_file(settings.layout)
    info = {
        "running": found is not None,
        "url": found.url if found else None,
        "pid": found.pid if found else None,
        "home": str(settings.home),
    }
    if output.output_format(output_) == OutputFormat.JSON:
        output.print_json({k: v for k, v in info.items() if v is not None})
    elif found is not None:
        output.stdout().print(
            f"running: pid {found.pid}, {found.url} (data directory {settings.home})",
            markup=False,
            highlight=False,
        )
    else:
        stale = " (stale server.json)" if published is not None else ""
        output.stdout().print(f"not running{stale}; start one with: hatoba server", markup=False)
    if found is None:
        raise typer.Exit(1)
