"""Register, describe, list, export and deregister task definitions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hatoba.controllers.refs import parse_taskdef_ref
from hatoba.model.ecs_import import export_task_definition, parse_task_definition
from hatoba.model.errors import FieldError, NotFound
from hatoba.model.taskdef import TaskDefinition, TaskDefinitionStatus
from hatoba.store.protocol import Store


@dataclass(frozen=True)
class Registered:
    task_definition: TaskDefinition
    warnings: list[FieldError]


class TaskDefinitions:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def register(self, data: Mapping[str, Any]) -> Registered:
        """Validate everything first; only a fully valid definition is stored."""
        parsed = parse_task_definition(data)
        stored = await self._store.register_task_definition(parsed.task_definition)
        return Registered(stored, list(parsed.warnings))

    async def describe(self, ref: str) -> TaskDefinition:
        family, revision = parse_taskdef_ref(ref)
        td = await self._store.get_task_definition(family, revision)
        if td is None:
            if revision is not None:
                raise NotFound(f"task definition {family}:{revision} not found")
            raise NotFound(f"no ACTIVE revision of task definition family {family!r}")
        return td

    async def list_definitions(
        self, family: str | None = None, status: TaskDefinitionStatus | None = None
    ) -> list[TaskDefinition]:
        return await self._store.list_task_definitions(family, status)

    async def export(self, ref: str) -> dict[str, Any]:
        return export_task_definition(await self.describe(ref), include_assigned=True)

    async def deregister(self, ref: str) -> TaskDefinition:
        family, revision = parse_taskdef_ref(ref)
        if revision is None:
            td = await self.describe(ref)
            revision = td.revision
        return await self._store.set_task_definition_status(
            family, revision, TaskDefinitionStatus.INACTIVE
        )
