"""``hatoba taskdef ...``: register, list, describe, export and deregister task definitions."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from hatoba.cli import output
from hatoba.cli.connection import session
from hatoba.cli.output import OutputFormat, OutputOption
from hatoba.cli.render import taskdef_panel, taskdef_table
from hatoba.model.taskdef import TaskDefinitionStatus

app = typer.Typer(help="Register and inspect task definitions (ECS JSON accepted as is).")


def load_document(path: str) -> dict[str, Any]:
    """JSON or YAML from a file or ``-`` (stdin)."""
    name = "stdin" if path == "-" else path
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise output.fail(f"cannot read {name}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise output.fail(f"{name} is not UTF-8 text: {exc}") from None
    yaml = path.endswith((".yaml", ".yml")) or (path == "-" and not text.lstrip().startswith("{"))
    data = _load_yaml(text, name) if yaml else _load_json(text, name)
    if not isinstance(data, dict):
        raise output.fail(f"{name}: a task definition must be a JSON object")
    return data


def _load_json(text: str, name: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise output.fail(
            f"{name} is not valid JSON: line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None


def _load_yaml(text: str, name: str) -> Any:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        return YAML(typ="safe", pure=True).load(text)
    except YAMLError as exc:
        raise output.fail(f"{name} is not valid YAML: {exc}") from None


@app.command()
def register(
    file: Annotated[str, typer.Argument(help="JSON (or YAML) file, or - for stdin.")],
    output_: OutputOption = None,
) -> None:
    """Register a new revision of a family from ECS task-definition JSON."""
    data = load_document(file)
    with session() as client:
        td, warnings = client.register_task_definition(data)
    for w in warnings:
        output.warning(str(w))
    if output.output_format(output_) == OutputFormat.JSON:
        output.print_json(td)
    else:
        output.stdout().print(f"Registered {td.arn}", markup=False, highlight=False)


@app.command("list")
def list_(
    family: Annotated[str | None, typer.Option(help="Only this family.")] = None,
    status: Annotated[
        TaskDefinitionStatus | None, typer.Option(case_sensitive=False, help="ACTIVE or INACTIVE.")
    ] = None,
    output_: OutputOption = None,
) -> None:
    """List task definitions."""
    with session() as client:
        tds = client.list_task_definitions(family=family, status=status)
    if output.output_format(output_) == OutputFormat.JSON:
        output.print_json(tds)
    else:
        output.stdout().print(taskdef_table(tds))


@app.command()
def describe(
    ref: Annotated[str, typer.Argument(help="FAMILY (latest ACTIVE) or FAMILY:REVISION.")],
    output_: OutputOption = None,
) -> None:
    """Show one task definition."""
    with session() as client:
        td = client.describe_task_definition(ref)
    if output.output_format(output_) == OutputFormat.JSON:
        output.print_json(td)
    else:
        output.stdout().print(taskdef_panel(td))


@app.command()
def export(
    ref: Annotated[str, typer.Argument(help="FAMILY or FAMILY:REVISION.")],
    output_: OutputOption = None,
) -> None:
    """Print the definition as ECS RegisterTaskDefinition JSON (always JSON), e.g. to edit
    and register again."""
    del output_  # accepted everywhere for consistency; export is JSON by definition
    with session() as client:
        output.print_json(client.export_task_definition(ref))


@app.command()
def deregister(
    ref: Annotated[str, typer.Argument(help="FAMILY:REVISION.")],
    output_: OutputOption = None,
) -> None:
    """Mark a revision INACTIVE: running tasks keep running, new ones cannot start from it."""
    with session() as client:
        td = client.deregister_task_definition(ref)
    if output.output_format(output_) == OutputFormat.JSON:
        output.print_json(td)
    else:
        output.stdout().print(f"Deregistered {td.arn}", markup=False, highlight=False)
