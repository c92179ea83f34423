"""``hatoba node ...``: list, describe, drain and activate nodes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer

from hatoba.cli import output
from hatoba.cli.connection import session
from hatoba.cli.output import OutputFormat, OutputOption
from hatoba.cli.render import node_panel, node_table
from hatoba.client import HatobaClient
from hatoba.model.node import NodeDescription

app = typer.Typer(
    help="Inspect nodes and take them out of placement (drain) or back in (activate)."
)
NodeArg = Annotated[str, typer.Argument(help="Node id (see hatoba node list).")]


def _show(node: NodeDescription, output_: OutputFormat | None) -> None:
    if output.output_format(output_) == OutputFormat.JSON:
        output.print_json(node)
    else:
        output.stdout().print(node_panel(node))


@app.command("list")
def list_(output_: OutputOption = None) -> None:
    """List nodes with their status and what their tasks reserve."""
    with session() as client:
        nodes = client.list_nodes()
    if output.output_format(output_) == OutputFormat.JSON:
        output.print_json(nodes)
    else:
        output.stdout().print(node_table(nodes))


@app.command()
def describe(node: NodeArg, output_: OutputOption = None) -> None:
    """Show a node: status, capacity and what is reserved, attributes."""
    with session() as client:
        found = client.describe_node(node)
    _show(found, output_)


def _set(node: str, call: Callable[[HatobaClient, str], NodeDescription]) -> NodeDescription:
    with session() as client:
        return call(client, node)


@app.command()
def drain(node: NodeArg, output_: OutputOption = None) -> None:
    """Stop placing new tasks on a node (status DRAINING).

    Standalone tasks already running on it keep running until they stop, as in ECS;
    moving service tasks off a draining node comes with services."""
    _show(_set(node, HatobaClient.drain_node), output_)


@app.command()
def activate(node: NodeArg, output_: OutputOption = None) -> None:
    """Let a drained node take new tasks again (status ACTIVE)."""
    _show(_set(node, HatobaClient.activate_node), output_)
