"""How the agent gets secret values at task start.

The parameter store (a later issue) implements ``SecretResolver``; until it is configured,
``NoParameterStore`` refuses every reference with a clear, value-free reason, so a task that
needs secrets stops with TaskFailedToStart instead of starting without them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class SecretRef:
    name: str  # the environment variable to set
    value_from: str  # parameter name, optionally with :version or :label


class SecretUnavailable(Exception):
    """A secret could not be resolved. The message names the reference, never a value."""


class SecretResolver(Protocol):
    async def resolve(self, refs: Sequence[SecretRef]) -> Mapping[str, str]:
        """Environment variable name -> value. Raises SecretUnavailable."""
        ...


class NoParameterStore:
    """The resolver in use while no parameter store is configured."""

    async def resolve(self, refs: Sequence[SecretRef]) -> Mapping[str, str]:
        if not refs:
            return {}
        names = ", ".join(f"{r.name} (valueFrom {r.value_from})" for r in refs)
        raise SecretUnavailable(
            f"ResourceInitializationError: secrets are not available: no parameter store "
            f"is configured on this control plane; cannot resolve {names}"
        )
