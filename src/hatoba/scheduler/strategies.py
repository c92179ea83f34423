"""Placement strategies (ECS ``placementStrategy``): soft preferences that rank feasible
nodes. Several strategies apply in order: the second only breaks ties of the first, and so
on; the node id breaks any tie left, so results are deterministic for a given sample.

- ``binpack`` cpu|memory: least remaining first, so other nodes stay empty for big tasks
  and scale-in frees whole machines.
- ``spread`` ``nodeId``/``instanceId``/``attribute:<name>``: fewest tasks of this group per
  node or per attribute value (e.g. per availability zone), for fault tolerance.
- ``random``: a draw from the injected RNG (seed it for deterministic tests).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from hatoba.model.errors import FieldError, ValidationFailed

MAX_STRATEGIES = 5  # as ECS


@dataclass(frozen=True)
class Binpack:
    field: Literal["cpu", "memory"] = "memory"


@dataclass(frozen=True)
class Spread:
    """``field`` is ``nodeId`` (per node) or ``attribute:<name>`` (per attribute value;
    nodes without the attribute form one bucket of their own)."""

    field: str = "nodeId"

    @property
    def attribute(self) -> str | None:
        return self.field[len("attribute:") :] if self.field.startswith("attribute:") else None


@dataclass(frozen=True)
class Random:
    pass


Strategy = Binpack | Spread | Random

DEFAULT_STRATEGIES: tuple[Strategy, ...] = (Binpack("memory"), Binpack("cpu"))
_NODE_FIELDS = frozenset({"nodeid", "instanceid", "host", "ec2instanceid"})


def parse_strategies(
    specs: Sequence[Mapping[str, object]], path: str = "placementStrategy"
) -> tuple[Strategy, ...]:
    """ECS-shaped specs (``{"type": "spread", "field": "attribute:zone"}``) to strategies;
    every bad entry is reported at once, with its JSON path. Empty means the default."""
    errors: list[FieldError] = []
    out: list[Strategy] = []
    if len(specs) > MAX_STRATEGIES:
        errors.append(FieldError(path, f"at most {MAX_STRATEGIES} strategies"))
    for i, spec in enumerate(specs):
        here = f"{path}[{i}]"
        kind, fld = spec.get("type"), spec.get("field")
        if kind == "binpack":
            if fld in ("cpu", "memory"):
                out.append(Binpack("cpu" if fld == "cpu" else "memory"))
            else:
                errors.append(FieldError(f"{here}.field", "binpack field must be cpu or memory"))
        elif kind == "spread":
            if isinstance(fld, str) and fld.lower() in _NODE_FIELDS:
                out.append(Spread("nodeId"))
            elif isinstance(fld, str) and fld.startswith("attribute:") and len(fld) > 10:
                out.append(Spread(fld))
            else:
                errors.append(
                    FieldError(
                        f"{here}.field",
                        "spread field must be instanceId, nodeId or attribute:<name>",
                    )
                )
        elif kind == "random":
            if fld is not None:
                errors.append(FieldError(f"{here}.field", "not allowed for random"))
            out.append(Random())
        else:
            errors.append(FieldError(f"{here}.type", "must be binpack, spread or random"))
    if errors:
        raise ValidationFailed(errors, "placement strategy")
    return tuple(out) or DEFAULT_STRATEGIES
