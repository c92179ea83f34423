"""``hatoba param ...``: the parameter store (String, StringList, encrypted SecureString)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from hatoba.cli import output
from hatoba.cli.connection import session
from hatoba.cli.output import OutputFormat, OutputOption
from hatoba.cli.render import when
from hatoba.client.access import AccessClient
from hatoba.model.params import ParameterType, ParameterView

app = typer.Typer(help="Store configuration and encrypted secrets, injected into tasks.")

Decrypt = Annotated[
    bool, typer.Option("--decrypt", help="Show SecureString values (needs canDecrypt).")
]


def read_value(value: str | None, value_file: str | None) -> str:
    """The value from the argument, a file, or stdin (``-``): files and stdin keep secrets
    out of shell history and process listings."""
    if value is not None and value_file is not None:
        raise output.fail("give the value as an argument or with --value-file, not both", 2)
    if value is not None:
        return value
    if value_file is None:
        raise output.fail("missing VALUE (or --value-file FILE, or --value-file - for stdin)", 2)
    if value_file == "-":
        text = sys.stdin.read()
    else:
        try:
            with open(value_file, encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise output.fail(
                f"--value-file: cannot read {value_file}: {exc.strerror}", 2
            ) from None
    return text[:-1] if text.endswith("\n") else text


def _table(params: list[ParameterView]) -> Table:
    table = Table(box=None, header_style="bold")
    for col in ("NAME", "TYPE", "VERSION", "LABELS", "VALUE", "MODIFIED", "BY"):
        table.add_column(col)
    for p in params:
        shown = "(encrypted)" if p.redacted else (p.value or "")
        table.add_row(
            p.name,
            p.type.value,
            str(p.version),
            ",".join(p.labels),
            shown,
            when(p.last_modified_at),
            p.last_modified_by or "",
        )
    return table


def _show(params: list[ParameterView], fmt: OutputFormat | None) -> None:
    if output.output_format(fmt) == OutputFormat.JSON:
        output.print_json(params)
    else:
        output.stdout().print(_table(params))


@app.command()
def put(
    name: Annotated[str, typer.Argument(help="Hierarchical name, e.g. /prod/app/db/password.")],
    value: Annotated[str | None, typer.Argument(help="The value (or use --value-file).")] = None,
    type_: Annotated[
        ParameterType, typer.Option("--type", "-t", help="String, StringList or SecureString.")
    ] = ParameterType.STRING,
    value_file: Annotated[
        str | None, typer.Option("--value-file", help="Read the value from FILE, or - (stdin).")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Store a new version of an existing name.")
    ] = False,
    description: Annotated[str | None, typer.Option(help="What it is for.")] = None,
    label: Annotated[
        list[str] | None, typer.Option("--label", help="Label the new version.")
    ] = None,
    output_: OutputOption = None,
) -> None:
    """Store a parameter (a new version when --overwrite)."""
    text = read_value(value, value_file)
    with session() as client:
        view = AccessClient(client).put_parameter(
            name,
            text,
            type_=type_,
            overwrite=overwrite,
            description=description,
            labels=list(label or []),
        )
    if output.output_format(output_) == OutputFormat.JSON:
        output.print_json(view)
    else:
        output.stdout().print(f"Stored {view.name} version {view.version}", markup=False)


@app.command()
def get(
    name: Annotated[str, typer.Argument(help="NAME, NAME:VERSION or NAME:LABEL.")],
    decrypt: Decrypt = False,
    output_: OutputOption = None,
) -> None:
    """Show one parameter (the value alone on stdout with --decrypt or for plain types)."""
    base, version, label = _split(name)
    with session() as client:
        view = AccessClient(client).get_parameter(
            base, decrypt=decrypt, version=version, label=label
        )
    if output.output_format(output_) == OutputFormat.JSON:
        output.print_json(view)
    elif view.redacted:
        output.stdout().print(_table([view]))
        output.info("value hidden: pass --decrypt (the token needs canDecrypt)")
    else:
        sys.stdout.write((view.value or "") + "\n")


def _split(ref: str) -> tuple[str, int | None, str | None]:
    from hatoba.model.params import parse_selector

    sel = parse_selector(ref, path="NAME")
    return sel.name, sel.version, sel.label


@app.command("list")
def list_(
    path: Annotated[str, typer.Argument(help="Only parameters under this path.")] = "/",
    recursive: Annotated[bool, typer.Option(help="Include deeper levels.")] = True,
    decrypt: Decrypt = False,
    output_: OutputOption = None,
) -> None:
    """List the latest version of each parameter under PATH."""
    with session() as client:
        params = AccessClient(client).list_parameters(path, recursive=recursive, decrypt=decrypt)
    _show(params, output_)


@app.command()
def history(
    name: Annotated[str, typer.Argument(help="Parameter name.")],
    decrypt: Decrypt = False,
    output_: OutputOption = None,
) -> None:
    """Every version of a parameter, oldest first."""
    with session() as client:
        params = AccessClient(client).parameter_history(name, decrypt=decrypt)
    _show(params, output_)


@app.command()
def label(
    name: Annotated[str, typer.Argument(help="Parameter name.")],
    version: Annotated[int, typer.Argument(help="Version to label.", min=1)],
    labels: Annotated[list[str], typer.Argument(help="Labels (each moves to this version).")],
    output_: OutputOption = None,
) -> None:
    """Attach labels to a version (``valueFrom: NAME:LABEL`` then resolves to it)."""
    with session() as client:
        view = AccessClient(client).label_parameter(name, version, labels)
    _show([view], output_)


@app.command()
def delete(
    name: Annotated[str, typer.Argument(help="Parameter name (all versions go).")],
    output_: OutputOption = None,
) -> None:
    """Delete a parameter and all its versions."""
    with session() as client:
        count = AccessClient(client).delete_parameter(name)
    if output.output_format(output_) == OutputFormat.JSON:
        output.print_json({"name": name, "deletedVersions": count})
    else:
        output.stdout().print(f"Deleted {name} ({count} versions)", markup=False)


@app.command("rotate-key")
def rotate_key(output_: OutputOption = None) -> None:
    """Start using a new master key: every SecureString is re-encrypted, then the old key is
    retired. Tasks keep resolving their secrets throughout."""
    with session() as client:
        result = AccessClient(client).rotate_key()
    if output.output_format(output_) == OutputFormat.JSON:
        output.print_json(result)
    else:
        output.stdout().print(
            f"Active key {result.get('activeKeyId')}; re-encrypted "
            f"{result.get('reencrypted')} values; retired {result.get('retiredKeyIds')}",
            markup=False,
        )
