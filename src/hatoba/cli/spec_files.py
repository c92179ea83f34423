"""Reading a request body from ``--from-file`` (JSON or YAML, ``-`` for stdin)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from hatoba.cli import output


def load_mapping(path: str, what: str) -> dict[str, Any]:
    """The mapping in ``path``: YAML for ``.yaml``/``.yml`` (and for stdin that does not
    start with ``{``), JSON otherwise. Any problem exits with a message naming the file;
    ``what`` says what the mapping should be (for the message when it is not one)."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise output.fail(f"--from-file: cannot read {path}: {exc.strerror or exc}") from None
    data: Any
    if path.endswith((".yaml", ".yml")) or (path == "-" and not text.lstrip().startswith("{")):
        from ruamel.yaml import YAML
        from ruamel.yaml.error import YAMLError

        try:
            data = YAML(typ="safe", pure=True).load(text)
        except YAMLError as exc:
            raise output.fail(f"{path} is not valid YAML: {exc}") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise output.fail(
                f"{path} is not valid JSON: line {exc.lineno} column {exc.colno}: {exc.msg}"
            ) from None
    if not isinstance(data, dict):
        raise output.fail(f"{path}: {what}")
    return data
