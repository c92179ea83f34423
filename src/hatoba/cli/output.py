"""Where and how the CLI prints: tables for people, camelCase JSON for scripts.

Everything meant for scripts (tables, JSON, task ids, log bytes) goes to stdout; progress,
warnings and errors go to stderr, so ``hatoba ... | jq`` and ``$(hatoba run ...)`` work.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from enum import StrEnum
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich.console import Console

from hatoba.model.errors import FieldError


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"


OutputOption = Annotated[
    OutputFormat | None,
    typer.Option(
        "--output",
        "-o",
        help="table (for people) or json (camelCase, for scripts).",
        case_sensitive=False,
        show_default=False,
    ),
]

_state = {"output": OutputFormat.TABLE}


def set_default_format(fmt: OutputFormat | None) -> None:
    """The top-level ``hatoba -o json ...`` option; a command's own ``-o`` wins over it."""
    _state["output"] = fmt or OutputFormat.TABLE


def output_format(fmt: OutputFormat | None) -> OutputFormat:
    return fmt if fmt is not None else _state["output"]


def stdout() -> Console:
    # Piped tables are for grep/awk: wide enough not to wrap or truncate cells.
    return Console(width=None if sys.stdout.isatty() else 250)


def stderr() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def to_json(value: Any) -> Any:
    """Models in their wire form (camelCase, no nulls); lists of models likewise."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_none=True)
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    return value


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(to_json(value), indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def info(message: str, style: str | None = None) -> None:
    stderr().print(message, style=style, markup=False)


def warning(message: str) -> None:
    stderr().print(f"warning: {message}", style="yellow", markup=False)


def error(message: str, fields: list[FieldError] | None = None) -> None:
    """``error: message`` then each ``path: message`` not already in the message."""
    lines = [f"error: {message}"]
    lines += [f"  - {f}" for f in fields or [] if str(f) not in message]
    stderr().print("\n".join(lines), style="red", markup=False)


def fail(message: str, code: int = 1, fields: list[FieldError] | None = None) -> typer.Exit:
    """Print an error and return the ``typer.Exit`` to raise (``raise fail(...)``)."""
    error(message, fields)
    return typer.Exit(code)


@contextlib.contextmanager
def waiting(message: str) -> Iterator[None]:
    """A spinner on stderr while something slow happens, only when stderr is a terminal."""
    if not sys.stderr.isatty():
        yield
        return
    with stderr().status(message):
        yield
