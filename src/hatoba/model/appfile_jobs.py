"""The app file's ``jobs:`` section: job name -> the fields of a job (``JobSpec``'s, camelCase,
without ``jobName``, which is the key).

```yaml
jobs:
  cardscan-report:
    taskDefinition: cardscan-report        # a bare family: the latest revision at each run
    schedule: cron(0 2 * * ? *)
    timezone: Asia/Tokyo
    retry: {maxAttempts: 3, retryOnFailure: true}
    chain: {onFailure: [page-someone]}
```

Checked here, with the file's lines: every field (``JobSpec``), the schedule expression and
time zone (the parser the server uses), the task definition reference, and chain cycles
among the file's jobs. What needs the server (the task definition exists, a chained job not
in the file exists) is checked by the plan (``appfile_diff``); the rest by ``Jobs.validate``
when applied. Jobs come out in apply order: a job after every file job it chains to, since a
job may only chain to jobs that exist.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError

from hatoba.model.appfile import JobDecl, Loc, TaskDefinitionDecl, _pydantic_message, split_path
from hatoba.model.errors import ValidationFailed
from hatoba.model.job import JobSpec
from hatoba.model.schedule import parse_schedule

if TYPE_CHECKING:
    from hatoba.model.appfile import _Loader

NAME_MESSAGE = "job name must be a letter, then letters, digits, - or _ (at most 255)"


def load_jobs(
    loader: _Loader, raw: dict[str, Any], tds: dict[str, TaskDefinitionDecl]
) -> dict[str, JobDecl]:
    out: dict[str, JobDecl] = {}
    for name, body in raw.items():
        at: Loc = ("jobs", name)
        if not isinstance(body, dict):
            loader.errors.append((at, "must be a mapping (taskDefinition, schedule, ...)"))
            continue
        given = body.get("jobName", body.get("job_name", name))
        if given != name:
            loader.errors.append(((*at, "jobName"), f"must be {name!r} (the key) or left out"))
            continue
        full = {**body, "jobName": name}
        valid = _fields_valid(loader, at, full)
        valid = _schedule_valid(loader, at, full) and valid
        ref = loader.ref(full.get("taskDefinition"), (*at, "taskDefinition"), tds)
        if valid and ref is not None:
            out[name] = JobDecl(name, JobSpec.model_validate(full), ref)
    return _ordered(loader, out)


def _fields_valid(loader: _Loader, at: Loc, body: dict[str, Any]) -> bool:
    try:
        JobSpec.model_validate(body)
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err["loc"])
            if loc and loc[0] in ("jobName", "job_name"):
                loader.errors.append((at, NAME_MESSAGE))
                continue
            if loc and loc[0] == "schedule":
                continue  # reported by _schedule_valid
            loader.errors.append(((*at, *loc), _pydantic_message(JobSpec, err)))
        return False
    return True


def _schedule_valid(loader: _Loader, at: Loc, body: dict[str, Any]) -> bool:
    """The schedule expression and time zone, as the server's parser reads them."""
    schedule = body.get("schedule")
    timezone = body.get("timezone", "UTC")
    if not isinstance(timezone, str):
        return False  # the model's own check reports it
    if schedule is None:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            message = f"{timezone!r} is not a known IANA time zone (e.g. UTC, Asia/Tokyo)"
            loader.errors.append(((*at, "timezone"), message))
            return False
        return True
    if not isinstance(schedule, str):
        loader.errors.append(((*at, "schedule"), "must be a string like cron(0 9 * * ? *)"))
        return False
    try:
        parse_schedule(schedule, timezone, "schedule", timezone_path="timezone")
    except ValidationFailed as exc:
        loader.errors += [((*at, *split_path(e.path)), e.message) for e in exc.errors]
        return False
    return True


def _ordered(loader: _Loader, jobs: dict[str, JobDecl]) -> dict[str, JobDecl]:
    """The jobs with each after the file's jobs it chains to; a cycle among them is an
    error at the chain entry that closes it."""
    done: dict[str, JobDecl] = {}
    visiting: list[str] = []

    def visit(name: str) -> None:
        if name in done:
            return
        visiting.append(name)
        decl = jobs[name]
        for path, target in decl.spec.chain.edges():
            if target not in jobs or target in done:
                continue
            if target in visiting:
                loop = " → ".join([*visiting[visiting.index(target) :], target])
                where = ("jobs", name, *split_path(path))
                loader.errors.append((where, f"chain cycle: {loop}"))
                continue
            visit(target)
        visiting.pop()
        done[name] = decl

    for name in jobs:
        visit(name)
    return done
