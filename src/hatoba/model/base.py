"""Base model: snake_case attributes in Python, camelCase on the wire (as ECS spells it)."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class WireModel(BaseModel):
    """A model whose JSON form uses ECS's camelCase names.

    Construct with either spelling; dump with ``by_alias=True`` for the wire.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_assignment=False,
    )

    def wire(self) -> dict[str, object]:
        """The JSON-ready camelCase form, without unset optional fields."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def utcnow() -> datetime:
    return datetime.now(UTC)
