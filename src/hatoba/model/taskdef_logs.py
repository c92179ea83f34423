"""A container's log capture settings: hatoba's ``logConfiguration`` options and ``logFiles``.

Options (strings, as ECS's ``options`` are), next to any output driver's own::

    hatoba-max-line          longest line kept in one record (bytes, "256K", "4MiB");
                             longer lines become PARTIAL records that readers join back.
                             Default: the node's HATOBA_LOG_MAX_LINE (1 MiB).
    hatoba-multiline-start   a regex: a line matching it starts a record, the lines after it
                             that do not match join it (stack traces). awslogs' own
                             ``awslogs-multiline-pattern`` is read the same way.
    hatoba-multiline-timeout seconds within which a continuation line must follow (default 1)

Pure: parsing and checks, each problem with its JSON path.
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from hatoba.model.errors import FieldError
from hatoba.model.log_outputs import parse_size
from hatoba.model.taskdef import ContainerDefinition

MAX_LINE = "hatoba-max-line"
MULTILINE_START = "hatoba-multiline-start"
MULTILINE_TIMEOUT = "hatoba-multiline-timeout"
AWSLOGS_MULTILINE = "awslogs-multiline-pattern"
# the keys hatoba's log capture reads; an output driver's checks should leave them alone
HATOBA_LOG_OPTIONS = frozenset({MAX_LINE, MULTILINE_START, MULTILINE_TIMEOUT})
DEFAULT_MAX_LINE = 1024 * 1024
MIN_MAX_LINE = 16
MAX_MAX_LINE = 64 * 1024 * 1024
DEFAULT_MULTILINE_TIMEOUT = 1.0


@dataclass(frozen=True)
class LogSettings:
    max_line: int | None = None  # None: the node's default
    multiline_start: str | None = None
    multiline_timeout: float = DEFAULT_MULTILINE_TIMEOUT


def log_settings(c: ContainerDefinition) -> LogSettings:
    """The container's settings (from a registered, hence valid, definition)."""
    opts = c.log_configuration.options if c.log_configuration else {}
    max_line = parse_size(opts[MAX_LINE]) if MAX_LINE in opts else None
    start = opts.get(MULTILINE_START) or opts.get(AWSLOGS_MULTILINE) or None
    timeout = float(opts.get(MULTILINE_TIMEOUT, DEFAULT_MULTILINE_TIMEOUT))
    return LogSettings(max_line, start, timeout)


def has_glob(path: str) -> bool:
    return glob.has_magic(path)


def check_log_settings(at: str, c: ContainerDefinition) -> list[FieldError]:
    """Every problem with the container's log options and ``logFiles``."""
    errors: list[FieldError] = []
    opts = c.log_configuration.options if c.log_configuration else {}
    here = f"{at}.logConfiguration.options"
    if MAX_LINE in opts:
        try:
            size = parse_size(opts[MAX_LINE])
        except ValueError as exc:
            errors.append(FieldError(f"{here}['{MAX_LINE}']", str(exc)))
        else:
            if not MIN_MAX_LINE <= size <= MAX_MAX_LINE:
                errors.append(
                    FieldError(
                        f"{here}['{MAX_LINE}']",
                        f"must be between {MIN_MAX_LINE} bytes and 64 MiB, got {size}",
                    )
                )
    for key in (MULTILINE_START, AWSLOGS_MULTILINE):
        if key in opts:
            _check_regex(f"{here}['{key}']", opts[key], errors)
    if MULTILINE_TIMEOUT in opts:
        try:
            ok = 0 < float(opts[MULTILINE_TIMEOUT]) <= 60
        except ValueError:
            ok = False
        if not ok:
            errors.append(
                FieldError(f"{here}['{MULTILINE_TIMEOUT}']", "must be seconds, > 0 and ≤ 60")
            )
    seen: dict[str, int] = {}
    for j, f in enumerate(c.log_files):
        path = PurePosixPath(f.path)
        where = f"{at}.logFiles[{j}]"
        if not path.is_absolute() and c.working_directory is None:
            errors.append(
                FieldError(
                    f"{where}.path",
                    "a relative path needs the container's workingDirectory (or make it absolute)",
                )
            )
        if f.path.endswith("/") or ".." in path.parts:
            errors.append(FieldError(f"{where}.path", "must name files, without '..'"))
        if f.multiline_start is not None:
            _check_regex(f"{where}.multilineStart", f.multiline_start, errors)
        key = f.tag or ("" if has_glob(f.path) else path.name)
        if key and key in seen:
            errors.append(
                FieldError(
                    f"{where}.tag",
                    f"the stream file:{key} is also logFiles[{seen[key]}]; set a distinct tag",
                )
            )
        seen.setdefault(key, j)
    return errors


def _check_regex(path: str, pattern: str, errors: list[FieldError]) -> None:
    try:
        re.compile(pattern)
    except re.error as exc:
        errors.append(FieldError(path, f"not a valid regular expression: {exc}"))
