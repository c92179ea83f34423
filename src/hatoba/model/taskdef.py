"""Task definitions: ECS's container recipe, accepted in ECS's own JSON (camelCase).

The models here check each field on its own (types, ranges, names). Rules that relate fields
to each other (unique names, dependsOn cycles, memory sums, "something to run") live in
``hatoba.model.taskdef_checks`` so that every such error is collected and reported with its
exact JSON path; parsing user JSON, warnings and export live in ``hatoba.model.ecs_import``.

ECS fields that do not apply to hatoba (see ``hatoba.model.ecs_fields``) are moved into an
``ignored`` dict on the object by a before-validator, so any code path that validates ECS JSON
(API, CLI, store) keeps them and ``export_task_definition`` can put them back.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, PlainValidator, field_validator, model_validator

from hatoba.model.base import WireModel
from hatoba.model.ecs_fields import CONTAINER_FIELDS_NOT_USED, TASK_FIELDS_NOT_USED

DEFAULT_STOP_TIMEOUT = 30.0
DEFAULT_STOP_SIGNAL = "SIGTERM"
SHELL = ("/bin/sh", "-c")

_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_PORT_RANGE_RE = re.compile(r"^(\d{1,5})-(\d{1,5})$")
_CPU_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*(vcpus?)?$", re.IGNORECASE)
_MEMORY_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*(mb|mib|gb|gib)?$", re.IGNORECASE)


def _check_name(value: str) -> str:
    if not _NAME_RE.match(value):
        raise ValueError("must be 1-255 letters, digits, hyphens or underscores")
    return value


Name = Annotated[str, AfterValidator(_check_name)]
"""Family and container names: ECS's rule, also safe as a path component on disk."""


def _check_signal(value: str) -> str:
    if value not in signal.Signals.__members__:
        raise ValueError(
            'must be a signal name such as "SIGTERM", "SIGINT", "SIGQUIT" or "SIGUSR1"'
        )
    return value


def _check_command(value: Any) -> list[str] | str | None:
    """A list of strings, or a string (allowed only with ``shell: true``, checked later).

    A plain validator, rather than a ``list[str] | str`` union, so a wrong type gives one
    readable error instead of one per union member.
    """
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(part, str) for part in value):
        return list(value)
    raise ValueError('must be a list of strings like ["python", "app.py"]')


Command = Annotated[
    list[str] | str | None,
    PlainValidator(_check_command, json_schema_input_type=list[str] | str | None),
]


def _keep_unused(data: Any, names: frozenset[str]) -> Any:
    """Move ECS fields hatoba does not use into ``ignored`` (kept, never dropped)."""
    if not isinstance(data, Mapping):
        return data
    out = dict(data)
    moved = {key: out.pop(key) for key in list(out) if key in names}
    if moved:
        ignored = out.get("ignored")
        out["ignored"] = {**(ignored if isinstance(ignored, Mapping) else {}), **moved}
    return out


def parse_cpu(value: Any) -> Any:
    """ECS task cpu: units (``256``, ``"1024"``) or vCPUs (``"1 vCPU"``, ``"0.5 vcpu"``)."""
    return _parse_quantity(
        value,
        _CPU_RE,
        {"vcpu": 1024, "vcpus": 1024},
        'must be cpu units (e.g. 256 or "1024") or vCPUs (e.g. "0.5 vCPU")',
    )


def parse_memory(value: Any) -> Any:
    """ECS task memory: MiB (``512``, ``"512"``, ``"512 MiB"``) or GB (``"1 GB"``, ``"2GB"``)."""
    return _parse_quantity(
        value,
        _MEMORY_RE,
        {"mb": 1, "mib": 1, "gb": 1024, "gib": 1024},
        'must be MiB (e.g. 512 or "512") or GB (e.g. "1 GB")',
    )


def _parse_quantity(value: Any, pattern: re.Pattern[str], units: dict[str, int], hint: str) -> Any:
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        match = pattern.match(value.strip())
        if match:
            number = float(match.group(1)) * units.get((match.group(2) or "").lower(), 1)
            if number.is_integer():
                return int(number)
    raise ValueError(hint)


class DependencyCondition(StrEnum):
    START = "START"
    COMPLETE = "COMPLETE"
    SUCCESS = "SUCCESS"
    HEALTHY = "HEALTHY"


class TaskDefinitionStatus(StrEnum):
    ACTIVE = "ACTIVE"
    INACTIVE = "INACTIVE"
    DELETE_IN_PROGRESS = "DELETE_IN_PROGRESS"


class EnvironmentVariable(WireModel):
    name: str = Field(min_length=1)
    value: str

    @field_validator("name")
    @classmethod
    def _no_equals(cls, value: str) -> str:
        if "=" in value or "\0" in value:
            raise ValueError("must not contain '=' or NUL")
        return value


class EnvironmentFile(WireModel):
    """``type: "file"`` is a local path (hatoba's); ``"s3"`` is ECS's, kept but not fetched."""

    value: str = Field(min_length=1)
    type: Literal["file", "s3"]


class Secret(WireModel):
    """An environment variable whose value comes from hatoba's parameter store at start."""

    name: str = Field(min_length=1)
    value_from: str = Field(min_length=1)


class Ulimit(WireModel):
    """-1 means unlimited, as in Docker."""

    name: Literal[
        "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
        "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack",
    ]  # fmt: skip
    soft_limit: int = Field(ge=-1)
    hard_limit: int = Field(ge=-1)


class ContainerDependency(WireModel):
    container_name: str
    condition: DependencyCondition


class HealthCheck(WireModel):
    """ECS health check: ``["CMD-SHELL", "curl -f ..."]`` or ``["CMD", exe, args...]``."""

    command: list[str]
    interval: int = Field(default=30, ge=5, le=300)
    timeout: int = Field(default=5, ge=2, le=120)
    retries: int = Field(default=3, ge=1, le=10)
    start_period: int = Field(default=0, ge=0, le=300)

    @field_validator("command")
    @classmethod
    def _check_form(cls, value: list[str]) -> list[str]:
        if value[:1] == ["CMD-SHELL"] and len(value) == 2:
            return value
        if value[:1] == ["CMD"] and len(value) >= 2:
            return value
        raise ValueError('must be ["CMD-SHELL", "shell command"] or ["CMD", "executable", ...]')

    def argv(self) -> list[str]:
        """The process to run for one check."""
        if self.command[0] == "CMD-SHELL":
            return [*SHELL, self.command[1]]
        return list(self.command[1:])


class PortMapping(WireModel):
    container_port: int | None = Field(default=None, ge=1, le=65535)
    host_port: int | None = Field(default=None, ge=0, le=65535)
    protocol: Literal["tcp", "udp"] = "tcp"
    name: str | None = None
    app_protocol: Literal["http", "http2", "grpc"] | None = None
    container_port_range: str | None = None

    @field_validator("container_port_range")
    @classmethod
    def _check_range(cls, value: str | None) -> str | None:
        match = _PORT_RANGE_RE.match(value) if value is not None else None
        if value is not None and not (match and 1 <= int(match[1]) < int(match[2]) <= 65535):
            raise ValueError('must be "low-high" with 1 <= low < high <= 65535')
        return value


class LogConfiguration(WireModel):
    log_driver: str = Field(min_length=1)
    options: dict[str, str] = Field(default_factory=dict)
    secret_options: list[Secret] = Field(default_factory=list)


class LogFile(WireModel):
    """A file the container writes, tailed into its logs (hatoba's, like Fluent Bit's tail
    input). ``path`` is absolute or relative to ``workingDirectory`` and may be a glob;
    ``tag`` names the stream (``file:<tag>``, default the file's name); ``multilineStart``
    overrides the container's ``multiline-start`` log option for this file."""

    path: str = Field(min_length=1)
    tag: str | None = Field(default=None, min_length=1, max_length=128)
    multiline_start: str | None = None


class ContainerDefinition(WireModel):
    """One container (process) of a task.

    hatoba extensions to ECS: ``shell`` (run a string ``command`` with ``/bin/sh -c``),
    ``stopSignal`` (what ``stop`` sends before the ``stopTimeout`` grace period ends in SIGKILL)
    and ``logFiles`` (files to tail into the container's logs).
    """

    name: Name
    image: str | None = None
    entry_point: list[str] | None = None
    command: Command = None
    shell: bool = False
    working_directory: str | None = None
    environment: list[EnvironmentVariable] = Field(default_factory=list)
    environment_files: list[EnvironmentFile] = Field(default_factory=list)
    secrets: list[Secret] = Field(default_factory=list)
    cpu: int = Field(default=0, ge=0)
    memory: int | None = Field(default=None, ge=6)
    memory_reservation: int | None = Field(default=None, ge=6)
    ulimits: list[Ulimit] = Field(default_factory=list)
    stop_timeout: int | None = Field(default=None, ge=0)
    stop_signal: Annotated[str, AfterValidator(_check_signal)] | None = None
    essential: bool = True
    depends_on: list[ContainerDependency] = Field(default_factory=list)
    health_check: HealthCheck | None = None
    user: str | None = None
    port_mappings: list[PortMapping] = Field(default_factory=list)
    log_configuration: LogConfiguration | None = None
    log_files: list[LogFile] = Field(default_factory=list)
    ignored: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _keep_ecs_only_fields(cls, data: Any) -> Any:
        return _keep_unused(data, CONTAINER_FIELDS_NOT_USED)

    def argv(self, command: list[str] | None = None) -> list[str]:
        """``entryPoint + command`` as ECS/Docker combine them; ``command`` overrides ours.

        A string command (only valid with ``shell: true``) runs as ``/bin/sh -c STRING``.
        """
        entry = list(self.entry_point or [])
        if command is not None:
            return entry + list(command)
        if isinstance(self.command, str):
            return [*entry, *SHELL, self.command]
        return entry + list(self.command or [])

    @property
    def effective_stop_timeout(self) -> float:
        """Seconds between the stop signal and SIGKILL (ECS's default is 30)."""
        return DEFAULT_STOP_TIMEOUT if self.stop_timeout is None else float(self.stop_timeout)

    @property
    def effective_stop_signal(self) -> str:
        return self.stop_signal or DEFAULT_STOP_SIGNAL

    @property
    def environment_dict(self) -> dict[str, str]:
        return {e.name: e.value for e in self.environment}


class Tag(WireModel):
    key: str = Field(min_length=1, max_length=128)
    value: str = Field(default="", max_length=256)


class TaskDefinition(WireModel):
    """An immutable ``family:revision``. ``cpu`` is in units (1024 = 1 core), ``memory`` in MiB.

    ``revision``, ``status``, ``registered_at`` and ``deregistered_at`` are assigned by
    hatoba (the store), never taken from user input.
    """

    family: Name
    revision: int = 0
    status: TaskDefinitionStatus = TaskDefinitionStatus.ACTIVE
    container_definitions: list[ContainerDefinition] = Field(min_length=1)
    cpu: Annotated[int, Field(ge=1)] | None = None
    memory: Annotated[int, Field(ge=6)] | None = None
    tags: list[Tag] = Field(default_factory=list)
    registered_at: datetime | None = None
    deregistered_at: datetime | None = None
    ignored: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _keep_ecs_only_fields(cls, data: Any) -> Any:
        return _keep_unused(data, TASK_FIELDS_NOT_USED)

    @field_validator("cpu", mode="before")
    @classmethod
    def _cpu(cls, value: Any) -> Any:
        return parse_cpu(value)

    @field_validator("memory", mode="before")
    @classmethod
    def _memory(cls, value: Any) -> Any:
        return parse_memory(value)

    @property
    def arn(self) -> str:
        return f"{self.family}:{self.revision}"

    def container(self, name: str) -> ContainerDefinition:
        for c in self.container_definitions:
            if c.name == name:
                return c
        raise KeyError(name)
