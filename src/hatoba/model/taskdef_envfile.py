"""Environment files (``environmentFiles`` with ``type: "file"``) and how variables combine.

The one piece of I/O in ``hatoba.model``: reading a local ``.env`` file. It is explicit (the
agent calls it at task start) and has no side effects. Interpolation is off, so ``${HOME}``
in a file stays literal: values must not depend on the environment of whichever process
happens to read the file (ECS does not interpolate either).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from os import PathLike

from dotenv import dotenv_values

from hatoba.model.errors import FieldError, ValidationFailed

SUBJECT = "environment file"


def load_env_file(path: str | PathLike[str]) -> dict[str, str]:
    """The variables of a ``.env`` file (``KEY=value`` lines, ``#`` comments, quotes).

    Raises ``ValidationFailed`` naming the file if it is missing, unreadable, not UTF-8, or
    has a ``KEY`` without ``=`` (write ``KEY=`` for an empty value).
    """
    name = str(path)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ValidationFailed(
            [FieldError(name, f"cannot read environment file: {reason}")], SUBJECT
        ) from None
    values = dotenv_values(stream=io.StringIO(text), interpolate=False)
    missing = [key for key, value in values.items() if value is None]
    if missing:
        raise ValidationFailed(
            [
                FieldError(name, f"{key} has no value (write {key}= for an empty value)")
                for key in missing
            ],
            SUBJECT,
        )
    return {key: value for key, value in values.items() if value is not None}


def merge_environment(
    files: Iterable[Mapping[str, str]],
    environment: Mapping[str, str],
    secrets: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Combine a container's variables: files in order (a later file wins), then
    ``environment`` (with overrides already applied), then secrets.

    As in ECS, explicit ``environment`` beats environment files; secrets win over both
    (a warning at registration points out such a collision).
    """
    out: dict[str, str] = {}
    for values in files:
        out.update(values)
    out.update(environment)
    out.update(secrets or {})
    return out
