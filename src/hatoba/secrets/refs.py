"""Turn a task's ``secrets: [{name, valueFrom}]`` into parameter selectors.

Why here: a resolver must reject every bad reference before fetching anything, with the
agent's own error type (``SecretUnavailable``), naming the environment variable and the
reference so the user knows which line of the task definition to fix.
"""

from __future__ import annotations

from collections.abc import Sequence

from hatoba.model.errors import ValidationFailed
from hatoba.model.params import Selector, parse_selector
from hatoba.secrets.protocol import SecretRef, SecretUnavailable

__all__ = ["Selector", "parse_refs", "parse_selector"]


def parse_refs(refs: Sequence[SecretRef]) -> dict[str, Selector]:
    """Environment variable name -> selector; ``SecretUnavailable`` listing every bad one."""
    out: dict[str, Selector] = {}
    problems: list[str] = []
    for ref in refs:
        try:
            out[ref.name] = parse_selector(ref.value_from)
        except ValidationFailed as exc:
            reasons = "; ".join(e.message for e in exc.errors)
            problems.append(f"{ref.name} (valueFrom {ref.value_from}): {reasons}")
    if problems:
        raise SecretUnavailable(
            "ResourceInitializationError: invalid secret references: " + " | ".join(problems)
        )
    return out
