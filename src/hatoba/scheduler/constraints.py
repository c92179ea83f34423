"""Placement constraints (ECS ``placementConstraints``): hard rules a node must satisfy.

``memberOf`` depends only on a node's attributes and id, so the index evaluates it once per
node and caches the result; ``distinctInstance`` depends on which groups already run on the
node, so it is checked on every placement against the live counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from hatoba.model.errors import FieldError, ValidationFailed
from hatoba.scheduler.query import Comparison, Expr, NodeView, is_static, parse

MAX_CONSTRAINTS = 10  # as ECS


@dataclass(frozen=True)
class MemberOf:
    """The node must satisfy a cluster query expression."""

    expression: str
    expr: Expr = field(
        compare=False, hash=False, repr=False, default=Comparison("nodeId", "exists")
    )

    @classmethod
    def of(cls, expression: str, path: str = "expression") -> MemberOf:
        return cls(expression, parse(expression, path))

    @property
    def reason(self) -> str:
        return f"CONSTRAINT:memberOf ({self.expression})"

    @property
    def static(self) -> bool:
        """Cacheable per node (reads only id and attributes, not ``task:group``)."""
        return is_static(self.expr)

    def holds(self, node: NodeView) -> bool:
        return self.expr.evaluate(node)


@dataclass(frozen=True)
class DistinctInstance:
    """No two tasks of the same group on one node (``Demand.group``)."""

    reason = "CONSTRAINT:distinctInstance"


Constraint = MemberOf | DistinctInstance


def parse_constraints(
    specs: Sequence[Mapping[str, object]], path: str = "placementConstraints"
) -> tuple[Constraint, ...]:
    """ECS-shaped specs (``{"type": "memberOf", "expression": ...}``) to constraints;
    every bad entry is reported at once, with its JSON path."""
    errors: list[FieldError] = []
    out: list[Constraint] = []
    if len(specs) > MAX_CONSTRAINTS:
        errors.append(FieldError(path, f"at most {MAX_CONSTRAINTS} constraints"))
    for i, spec in enumerate(specs):
        here = f"{path}[{i}]"
        kind = spec.get("type")
        if kind == "distinctInstance":
            if spec.get("expression") is not None:
                errors.append(FieldError(f"{here}.expression", "not allowed for distinctInstance"))
            out.append(DistinctInstance())
        elif kind == "memberOf":
            expression = spec.get("expression")
            if not isinstance(expression, str) or not expression.strip():
                errors.append(FieldError(f"{here}.expression", "required for memberOf"))
                continue
            try:
                out.append(MemberOf.of(expression, f"{here}.expression"))
            except ValidationFailed as e:
                errors.extend(e.errors)
        else:
            errors.append(FieldError(f"{here}.type", "must be memberOf or distinctInstance"))
    if errors:
        raise ValidationFailed(errors, "placement constraints")
    return tuple(out)
