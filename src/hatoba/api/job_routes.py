"""REST endpoints for scheduled and batch jobs: the declared side (create, replace, delete,
enable, disable, describe, list), runs (start one now, history, describe, cancel, long-poll
wait), events and the next fire times.

Roles: reads need a viewer; starting, cancelling, enabling and disabling runs an operator;
creating, replacing and deleting a job a deployer. A token with scopes must reach
``job:NAME`` for any change to (or run of) a job, and also ``family:FAMILY`` when the change
picks a task definition and ``job:TARGET`` for every job it chains to (it will start them).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from hatoba.api import auth
from hatoba.api.services import ApiServices
from hatoba.controllers.refs import parse_taskdef_ref
from hatoba.model.access import Principal, Role
from hatoba.model.base import WireModel
from hatoba.model.errors import FieldError, ValidationFailed
from hatoba.model.job import MAX_JOB_EVENTS_KEPT, Job, JobEvent, JobRun, JobSpec

router = APIRouter(prefix="/v1", dependencies=[Depends(auth.require(Role.VIEWER))], tags=["jobs"])

MAX_WAIT_SECONDS = 300.0  # as GET /v1/tasks/{ref}/wait
MAX_HISTORY_PAGE = 1000
MAX_NEXT = 100


async def services(request: Request) -> ApiServices:
    svc: ApiServices = request.app.state.services
    return svc


Svc = Annotated[ApiServices, Depends(services)]


class JobList(WireModel):
    jobs: list[Job]


class JobRunList(WireModel):
    runs: list[JobRun]


class JobEventList(WireModel):
    events: list[JobEvent]


class NextFireTimes(WireModel):
    """The next scheduled ticks, in UTC (``timezone`` is the job's, for display)."""

    job_name: str
    schedule: str | None = None
    timezone: str
    flexible_window_minutes: int = 0
    fire_times: list[datetime]


class CancelBody(WireModel):
    reason: str | None = None


def _check_job_scope(principal: Principal, name: str, spec: JobSpec | None = None) -> None:
    """A scoped token must reach the job; for a create or replace also its task definition's
    family and every job it chains to. An unparsable reference is left for the controller
    to report (422)."""
    if not principal.scopes:
        return
    auth.check_scope(principal, f"job:{name}")
    if spec is None:
        return
    for _, target in spec.chain.edges():
        auth.check_scope(principal, f"job:{target}")
    try:
        family = parse_taskdef_ref(spec.task_definition)[0]
    except ValidationFailed:
        return
    auth.check_scope(principal, f"family:{family}")


async def _check_run_scope(svc: ApiServices, principal: Principal, run_id: str) -> JobRun:
    run = await svc.jobs.get_run(run_id)
    _check_job_scope(principal, run.job_name)
    return run


# -- jobs ----------------------------------------------------------------------------------
@router.post(
    "/jobs",
    response_model=Job,
    response_model_exclude_none=True,
    summary="Create a job: a task definition run on a schedule, on demand or chained",
)
async def create_job(svc: Svc, principal: auth.Deployer, body: JobSpec) -> Job:
    """Every problem is reported at once by JSON path (422): the schedule, the time zone,
    the task definition and its overrides, chained jobs (missing, or a cycle). 409 when a
    job of that name exists."""
    _check_job_scope(principal, body.job_name, body)
    return await svc.jobs.create(body)


@router.get("/jobs", response_model=JobList, response_model_exclude_none=True)
async def list_jobs(svc: Svc) -> JobList:
    """Every job, by name."""
    return JobList(jobs=await svc.jobs.list())


@router.get("/jobs/{job_name}", response_model=Job, response_model_exclude_none=True)
async def describe_job(svc: Svc, job_name: str) -> Job:
    return await svc.jobs.describe(job_name)


@router.put(
    "/jobs/{job_name}",
    response_model=Job,
    response_model_exclude_none=True,
    summary="Replace a job's spec (declarative: fields left out take their defaults)",
)
async def update_job(svc: Svc, principal: auth.Deployer, job_name: str, body: JobSpec) -> Job:
    """``jobName`` in the body must be the job's. A new schedule or time zone starts
    counting ticks from now (earlier ones are not "missed"); runs in progress carry on."""
    _check_job_scope(principal, job_name, body)
    return await svc.jobs.update(job_name, body)


@router.delete("/jobs/{job_name}", response_model=Job, response_model_exclude_none=True)
async def delete_job(svc: Svc, principal: auth.Deployer, job_name: str) -> Job:
    """Cancel the job's active runs, then delete it with its history; returns the job as it
    was. 409 while another job chains to it."""
    _check_job_scope(principal, job_name)
    job = await svc.jobs.describe(job_name)
    await svc.jobs.delete(job_name)
    return job


@router.post("/jobs/{job_name}/enable", response_model=Job, response_model_exclude_none=True)
async def enable_job(svc: Svc, principal: auth.Operator, job_name: str) -> Job:
    """Its schedule fires again, from now on (ticks while disabled are not "missed")."""
    _check_job_scope(principal, job_name)
    return await svc.jobs.enable(job_name)


@router.post("/jobs/{job_name}/disable", response_model=Job, response_model_exclude_none=True)
async def disable_job(svc: Svc, principal: auth.Operator, job_name: str) -> Job:
    """No more scheduled runs; runs in progress carry on, and manual runs still start."""
    _check_job_scope(principal, job_name)
    return await svc.jobs.disable(job_name)


# -- runs ----------------------------------------------------------------------------------
@router.post(
    "/jobs/{job_name}/runs",
    response_model=JobRun,
    response_model_exclude_none=True,
    summary="Start a run now (trigger manual), whatever the schedule and overlap policy",
)
async def run_job(svc: Svc, principal: auth.Operator, job_name: str) -> JobRun:
    """The run is PENDING; the job scheduler launches it within moments. Follow it with
    ``GET /v1/job-runs/{runId}/wait``."""
    _check_job_scope(principal, job_name)
    return await svc.jobs.run_now(job_name)


@router.get("/jobs/{job_name}/runs", response_model=JobRunList, response_model_exclude_none=True)
async def job_history(
    svc: Svc,
    job_name: str,
    limit: Annotated[int, Query(ge=1, le=MAX_HISTORY_PAGE)] = 50,
    before: Annotated[str | None, Query(description="runId: the page after this run")] = None,
) -> JobRunList:
    """The job's runs, newest first (skipped ticks too), with their attempts."""
    return JobRunList(runs=await svc.jobs.history(job_name, limit=limit, before=before))


@router.get("/job-runs/{run_id}", response_model=JobRun, response_model_exclude_none=True)
async def describe_run(svc: Svc, run_id: str) -> JobRun:
    return await svc.jobs.get_run(run_id)


@router.post("/job-runs/{run_id}/cancel", response_model=JobRun, response_model_exclude_none=True)
async def cancel_run(
    svc: Svc, principal: auth.Operator, run_id: str, body: CancelBody | None = None
) -> JobRun:
    """Stop the run's task; the run is CANCELLED (no retry, no chain). A finished run is
    returned as it is."""
    await _check_run_scope(svc, principal, run_id)
    return await svc.jobs.cancel_run(run_id, body.reason if body else None)


@router.get("/job-runs/{run_id}/wait", response_model=JobRun, response_model_exclude_none=True)
async def wait_run(
    svc: Svc,
    run_id: str,
    finished: bool = False,
    timeout: Annotated[float, Query(ge=0, le=MAX_WAIT_SECONDS)] = 30.0,
) -> JobRun:
    """Long poll: returns once the run has a task (or has finished) — with
    ``finished=true`` only once it has finished — or at ``timeout`` as it is."""
    return await svc.jobs.wait_for_run(run_id, timeout, finished=finished)


# -- events and schedule -------------------------------------------------------------------
@router.get(
    "/jobs/{job_name}/events", response_model=JobEventList, response_model_exclude_none=True
)
async def job_events(
    svc: Svc,
    job_name: str,
    limit: Annotated[int, Query(ge=1, le=MAX_JOB_EVENTS_KEPT)] = MAX_JOB_EVENTS_KEPT,
    after_id: Annotated[int | None, Query(alias="afterId", ge=0)] = None,
) -> JobEventList:
    """Newest first; with ``afterId`` only the events newer than that id (to follow)."""
    return JobEventList(events=await svc.jobs.events(job_name, limit=limit, after_id=after_id))


@router.get("/jobs/{job_name}/next", response_model=NextFireTimes, response_model_exclude_none=True)
async def next_fire_times(
    svc: Svc,
    job_name: str,
    n: Annotated[int, Query(ge=1, le=MAX_NEXT)] = 5,
    after: Annotated[datetime | None, Query(description="RFC 3339; default now")] = None,
) -> NextFireTimes:
    """The next ``n`` ticks in UTC (empty without a schedule, or past its last ``at()``).
    A disabled job lists them too: they are what enabling it would fire."""
    job = await svc.jobs.describe(job_name)
    if after is not None and (after.tzinfo is None or after.utcoffset() is None):
        raise ValidationFailed([_naive("after")], subject="request")
    times = await svc.jobs.next_fire_times(job_name, n, after=after)
    return NextFireTimes(
        job_name=job.job_name,
        schedule=job.schedule,
        timezone=job.timezone,
        flexible_window_minutes=job.flexible_window_minutes,
        fire_times=times,
    )


def _naive(field: str) -> FieldError:
    return FieldError(field, "give a time zone (Z or +09:00)")
