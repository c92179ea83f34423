"""``hatoba token ...`` and ``hatoba audit``: who may call the API, and what they did."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from hatoba.cli import output
from hatoba.cli.connection import session
from hatoba.cli.output import OutputFormat, OutputOption
from hatoba.cli.parsing import parse_duration
from hatoba.cli.render import when
from hatoba.client.access import AccessClient
from hatoba.model.access import ApiToken, Role

tokens = typer.Typer(help="API tokens with roles: viewer, operator, deployer, admin.")


def _token_table(items: list[ApiToken]) -> Table:
    table = Table(box=None, header_style="bold")
    for col in ("ID", "NAME", "ROLE", "SCOPES", "DECRYPT", "CREATED", "EXPIRES", "REVOKED"):
        table.add_column(col)
    for t in items:
        table.add_row(
            t.token_id,
            t.name,
            t.role.value,
            ",".join(t.scopes) or "(all)",
            "yes" if t.can_decrypt else "",
            when(t.created_at),
            when(t.expires_at),
            when(t.revoked_at),
        )
    return table


@tokens.command()
def create(
    name: Annotated[str, typer.Argument(help="Who or what the token is for.")],
    role: Annotated[Role, typer.Option(help="viewer, operator, deployer or admin.")],
    scope: Annotated[
        list[str] | None,
        typer.Option(help="Limit to family:NAME, service:NAME, job:NAME or param:/PATH/*."),
    ] = None,
    can_decrypt: Annotated[bool, typer.Option(help="May read SecureString values.")] = False,
    expires_in: Annotated[
        str | None, typer.Option(help="Lifetime, e.g. 30d, 12h (default: no expiry).")
    ] = None,
    output_: OutputOption = None,
) -> None:
    """Create a token; its secret is printed once and never stored."""
    hours = None
    if expires_in is not None:
        hours = _duration_hours(expires_in)
    with session() as client:
        created = AccessClient(client).create_token(
            name, role, scopes=list(scope or []), can_decrypt=can_decrypt, expires_in_hours=hours
        )
    if output.output_format(output_) == OutputFormat.JSON:
        output.print_json({"token": created.token, "secret": created.secret})
    else:
        output.info(f"token {created.token.token_id} ({created.token.role.value}); save it now:")
        typer.echo(created.secret)


def _duration_hours(text: str) -> float:
    text = text.strip()
    if text.endswith("d") and text[:-1].isdigit():
        return int(text[:-1]) * 24.0
    return parse_duration(text, "--expires-in") / 3600


@tokens.command("list")
def list_(output_: OutputOption = None) -> None:
    """List tokens (never their secrets)."""
    with session() as client:
        items = AccessClient(client).list_tokens()
    if output.output_format(output_) == OutputFormat.JSON:
        output.print_json(items)
    else:
        output.stdout().print(_token_table(items))


@tokens.command()
def revoke(
    token_id: Annotated[str, typer.Argument(help="Token id (from token list).")],
    output_: OutputOption = None,
) -> None:
    """Revoke a token: its next call gets 401."""
    with session() as client:
        token = AccessClient(client).revoke_token(token_id)
    if output.output_format(output_) == OutputFormat.JSON:
        output.print_json(token)
    else:
        output.stdout().print(f"Revoked {token.token_id} ({token.name})", markup=False)


def audit(
    limit: Annotated[int, typer.Option(min=1, max=10000, help="How many entries.")] = 50,
    output_: OutputOption = None,
) -> None:
    """Every mutating API call, newest first: who, what, when, from where, result."""
    with session() as client:
        entries = AccessClient(client).audit(limit=limit)
    if output.output_format(output_) == OutputFormat.JSON:
        output.print_json(entries)
        return
    table = Table(box=None, header_style="bold")
    for col in ("WHEN", "WHO", "CALL", "STATUS", "FROM"):
        table.add_column(col)
    for e in entries:
        table.add_row(
            when(e.at), e.principal, f"{e.method} {e.path}", str(e.status), e.client or ""
        )
    output.stdout().print(table)
