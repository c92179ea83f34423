"""Log streams as NDJSON: ``GET /v1/logs?target=...`` (a task, ``service/NAME``, ``job/NAME``)
and ``GET /v1/tasks/{ref}/logs``.

One object per line: ``timestampNs``, ``taskId``, ``container``, ``stream`` (``stdout``,
``stderr`` or ``file:<name>``), and ``message`` when the line is valid UTF-8, else
``messageBase64`` (the exact bytes); ``eol: false`` when the output ended without a
newline; ``partial: true`` on a fragment of a longer line (only with ``raw``). An error after
the stream began arrives as an ``{"error": ...}`` object.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from hatoba.api import auth
from hatoba.api.routes import Svc
from hatoba.api.services import ApiServices
from hatoba.logs.query import LogFilter, LogQuery, LogTask
from hatoba.logs.reader import TaskLogLine
from hatoba.logs.records import NO_EOL, PARTIAL
from hatoba.model.access import Role
from hatoba.model.errors import FieldError, HatobaError, NotFound, ValidationFailed
from hatoba.model.task import LastStatus, Task
from hatoba.model.taskdef import TaskDefinition

router = APIRouter(prefix="/v1", dependencies=[Depends(auth.require(Role.VIEWER))])
STREAMS = ("stdout", "stderr", "file")
GROUP_REFRESH = 1.0  # seconds between looks for a service's (or job's) new tasks
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def log_line_json(line: TaskLogLine) -> bytes:
    rec = line.record
    out: dict[str, Any] = {
        "timestampNs": rec.timestamp_ns,
        "taskId": line.task_id,
        "container": line.container,
        "stream": line.stream,
    }
    try:
        out["message"] = rec.data.decode("utf-8")
    except UnicodeDecodeError:
        out["messageBase64"] = base64.b64encode(rec.data).decode("ascii")
    if rec.flags & NO_EOL:
        out["eol"] = False
    if rec.flags & PARTIAL:
        out["partial"] = True
    return json.dumps(out, ensure_ascii=False).encode() + b"\n"


def parse_time(value: str, field: str, now_ns: int | None = None) -> int:
    """``10m`` or ``1h30m`` (that long ago), RFC 3339 / ISO 8601, or nanoseconds since the
    epoch."""
    now = time.time_ns() if now_ns is None else now_ns
    text = value.strip()
    if text.isdigit():
        return int(text)
    if _DURATION.fullmatch(text):  # 10m, 1h30m, 250ms
        seconds = sum(float(n) * _UNITS[u] for n, u in _DURATION_PART.findall(text))
        return now - int(seconds * 1e9)
    try:
        ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationFailed(
            [FieldError(field, f"{value!r}: want a duration like 10m or 2h, or RFC 3339")]
        ) from None
    if ts.tzinfo is None:
        raise ValidationFailed([FieldError(field, f"{value!r}: give a time zone (Z or +09:00)")])
    return int(ts.timestamp() * 1e9)


class _Definitions:
    """Task definitions by ARN, read once (a revision never changes)."""

    def __init__(self, svc: ApiServices) -> None:
        self.svc = svc
        self._cache: dict[str, TaskDefinition | None] = {}

    async def get(self, arn: str) -> TaskDefinition | None:
        if arn not in self._cache:
            family, _, rev = arn.rpartition(":")
            td = None
            if rev.isdigit():
                td = await self.svc.store.get_task_definition(family, int(rev))
            self._cache[arn] = td
        return self._cache[arn]

    async def log_task(self, t: Task) -> LogTask:
        return LogTask(
            t.task_id,
            [c.name for c in t.containers],
            await self.get(t.task_definition_arn),
            t.last_status == LastStatus.STOPPED,
        )


Refresh = Callable[[], Awaitable[Sequence[LogTask]]]
KeepFollowing = Callable[[], Awaitable[bool]] | None


async def resolve_target(svc: ApiServices, target: str) -> tuple[Refresh, KeepFollowing, bool]:
    """(refresh, keep_following, is a group) for ``TASK``, ``service/NAME`` or ``job/NAME``."""
    defs = _Definitions(svc)
    kind, slash, name = target.partition("/")
    if slash and kind in ("service", "job") and name:
        group = f"{kind}:{name}"

        async def exists() -> bool:
            if kind == "service":
                service = await svc.store.get_service(name)
                return service is not None and service.status.value != "INACTIVE"
            return await svc.store.get_job(name) is not None

        async def refresh_group() -> list[LogTask]:
            tasks = await svc.store.list_tasks(group=group)
            return [await defs.log_task(t) for t in reversed(tasks)]  # oldest first

        if not await exists() and not await svc.store.list_tasks(group=group, limit=1):
            raise NotFound(f"no {kind} {name!r} (and no tasks of it are kept)")
        return refresh_group, exists, True
    task = await svc.tasks.resolve(target.removeprefix("task/"))

    async def refresh_task() -> list[LogTask]:
        t = await svc.store.get_task(task.task_id)
        return [await defs.log_task(t)] if t is not None else []

    return refresh_task, None, False


def _filter(
    task_containers: Sequence[str] | None,
    container: str | None,
    stream: str | None,
    grep: str | None,
    since: int | None,
    until: int | None,
) -> LogFilter:
    if stream is not None and stream not in STREAMS and not stream.startswith("file:"):
        raise ValidationFailed(
            [FieldError("stream", f"{stream!r}: want stdout, stderr, file or file:NAME")]
        )
    if container is not None and task_containers is not None and container not in task_containers:
        names = list(task_containers)
        raise ValidationFailed(
            [FieldError("container", f"no container {container!r}; the task has {names}")]
        )
    pattern = None
    if grep is not None:
        try:
            pattern = re.compile(grep)
        except re.error as exc:
            raise ValidationFailed([FieldError("grep", f"not a valid regex: {exc}")]) from None
    return LogFilter(since, until, pattern, container, stream)


def _ndjson(batches: AsyncIterator[list[TaskLogLine]]) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        try:
            async for batch in batches:
                yield b"".join(log_line_json(line) for line in batch)
        except HatobaError as exc:
            yield json.dumps({"error": {"code": exc.code, "message": str(exc)}}).encode() + b"\n"

    return StreamingResponse(body(), media_type="application/x-ndjson")


@router.get("/logs", tags=["logs"])
async def logs(
    svc: Svc,
    target: str,
    follow: bool = False,
    since: str | None = None,
    until: str | None = None,
    grep: str | None = None,
    container: str | None = None,
    stream: str | None = None,
    tail: Annotated[int | None, Query(ge=0)] = None,
    raw: bool = False,
) -> StreamingResponse:
    """A task's logs (``target`` = id or prefix), or every task of ``service/NAME`` or
    ``job/NAME`` (stopped ones still kept included), interleaved by time; with ``follow``
    the tasks that start later too. ``since``/``until``: ``10m`` or RFC 3339. ``grep``: a
    regex. ``tail``: the last N lines first. ``raw``: PARTIAL fragments as stored."""
    refresh, keep_following, group = await resolve_target(svc, target)
    containers = None
    if not group:
        containers = [name for t in await refresh() for name in t.containers]
    flt = _filter(
        containers,
        container,
        stream,
        grep,
        parse_time(since, "since") if since else None,
        parse_time(until, "until") if until else None,
    )
    query = LogQuery(
        svc.layout,
        flt,
        raw=raw,
        tail=tail,
        refresh_interval=GROUP_REFRESH if group else 0.05,
    )
    return _ndjson(query.stream(refresh, follow=follow, keep_following=keep_following))


@router.get("/tasks/{ref}/logs", tags=["tasks"])
async def task_logs(
    svc: Svc,
    ref: str,
    follow: bool = False,
    container: str | None = None,
    since_ns: Annotated[int | None, Query(alias="sinceNs")] = None,
) -> StreamingResponse:
    """One task's logs (``GET /v1/logs?target=TASK`` with fewer options)."""
    refresh, _, _ = await resolve_target(svc, ref)
    containers = [name for t in await refresh() for name in t.containers]
    flt = _filter(containers, container, None, None, since_ns, None)
    query = LogQuery(svc.layout, flt)
    return _ndjson(query.stream(refresh, follow=follow))
