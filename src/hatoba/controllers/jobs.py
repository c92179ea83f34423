"""Jobs: create / update / delete / enable / disable / describe / list, run now, cancel a
run, history, events and next fire times. Requests are validated whole (every bad field at
once, by JSON path) and stored with compare-and-set; the job scheduler (``job_loop``) does
the running.

A manual run (``run_now``) is stored PENDING; the scheduler, on whichever control plane
holds its lease, launches it within moments (the change feed wakes it). ``wait_for_run``
follows a run until it has a task, or has finished, for ``hatoba job run --follow``.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Callable
from datetime import datetime

from hatoba.controllers.job_plan import start_of
from hatoba.controllers.job_runs import RunOps, new_run_id
from hatoba.controllers.refs import parse_taskdef_ref
from hatoba.controllers.tasks import Tasks
from hatoba.model.clock import Clock
from hatoba.model.errors import Conflict, FieldError, NotFound, ValidationFailed
from hatoba.model.job import ChainSpec, Job, JobEvent, JobRun, JobSpec, RunTrigger
from hatoba.model.schedule import Schedule, parse_schedule
from hatoba.model.taskdef import TaskDefinitionStatus
from hatoba.model.taskdef_overrides import apply_overrides
from hatoba.store.protocol import Store

CAS_ATTEMPTS = 20
MAX_NEXT_FIRE_TIMES = 100


def _parse(expression: str, timezone: str) -> Schedule:
    return parse_schedule(expression, timezone, "schedule", timezone_path="timezone")


class Jobs:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        tasks: Tasks,
        *,
        parse: Callable[[str, str], Schedule] = _parse,
    ) -> None:
        self._store = store
        self._clock = clock
        # the schedule parser: tests and benchmarks install one that also knows a
        # per-second schedule
        self.parse = parse
        # only cancels: it never launches (the scheduler does)
        self._runs = RunOps(store, clock, tasks, holder="api", rand=lambda: 0.5)

    # -- validation ------------------------------------------------------------------------
    async def validate(self, spec: JobSpec) -> list[FieldError]:
        """Every problem with ``spec`` against the stored state (task definition, chained
        jobs, chain cycles), without storing anything."""
        errors: list[FieldError] = []
        await self._check_taskdef(spec, errors)
        if spec.schedule is not None:
            try:
                self.parse(spec.schedule, spec.timezone)
            except ValidationFailed as exc:
                errors.extend(exc.errors)
        await self._check_chain(spec, errors)
        return errors

    async def _check_taskdef(self, spec: JobSpec, errors: list[FieldError]) -> None:
        try:
            family, revision = parse_taskdef_ref(spec.task_definition)
        except ValidationFailed as exc:
            errors.extend(exc.errors)
            return
        td = await self._store.get_task_definition(family, revision)
        if td is None:
            errors.append(
                FieldError("taskDefinition", f"task definition {spec.task_definition} not found")
            )
            return
        if td.status != TaskDefinitionStatus.ACTIVE:
            errors.append(
                FieldError("taskDefinition", f"{td.arn} is {td.status.value}; it cannot run")
            )
            return
        try:
            apply_overrides(td, spec.overrides)
        except ValidationFailed as exc:
            errors.extend(exc.errors)

    async def _check_chain(self, spec: JobSpec, errors: list[FieldError]) -> None:
        edges = spec.chain.edges()
        if not edges:
            return
        graph = {j.job_name: j.chain for j in await self._store.list_jobs()}
        for path, target in edges:
            if target != spec.job_name and target not in graph:
                errors.append(FieldError(path, f"job {target} does not exist"))
        for path, target in edges:
            cycle = self._cycle(spec, target, graph)
            if cycle is not None:
                loop = " → ".join([spec.job_name, *cycle])
                errors.append(FieldError(path, f"chain cycle: {loop}"))

    @staticmethod
    def _cycle(spec: JobSpec, start: str, graph: dict[str, ChainSpec]) -> list[str] | None:
        """The path from ``start`` back to ``spec``'s job over chain edges, if any (with
        ``spec``'s own chain standing in for the stored one)."""
        seen: set[str] = set()
        stack: list[tuple[str, list[str]]] = [(start, [start])]
        while stack:
            name, path = stack.pop()
            if name == spec.job_name:
                return path
            if name in seen:
                continue
            seen.add(name)
            chain = graph.get(name)
            if chain is None:
                continue
            targets = [target for _, target in chain.edges()]
            stack.extend((target, [*path, target]) for target in reversed(targets))
        return None

    async def _validated(self, spec: JobSpec, subject: str) -> None:
        errors = await self.validate(spec)
        if errors:
            raise ValidationFailed(errors, subject=subject)

    # -- CRUD ------------------------------------------------------------------------------
    async def create(self, spec: JobSpec) -> Job:
        await self._validated(spec, "CreateJob request")
        now = self._clock.now()
        job = Job.model_validate(
            spec.model_dump() | {"created_at": now, "updated_at": now, "last_tick": now}
        )
        try:
            return await self._store.create_job(job)
        except Conflict:
            raise Conflict(f"job {spec.job_name} already exists") from None

    async def update(self, name: str, spec: JobSpec) -> Job:
        """Replace the job's spec (declarative, as the app file does). A new schedule or
        time zone, or enabling a disabled job, moves the watermark to now: ticks before
        are not "missed". Runs in progress carry on; retries use the new spec."""
        if spec.job_name != name:
            raise ValidationFailed(
                [FieldError("jobName", f"is {spec.job_name!r}, the job being updated is {name!r}")],
                subject="UpdateJob request",
            )
        await self._validated(spec, "UpdateJob request")
        return await self._mutate(name, lambda job: spec)

    async def enable(self, name: str) -> Job:
        return await self._mutate(name, lambda job: job.spec().model_copy(update={"enabled": True}))

    async def disable(self, name: str) -> Job:
        return await self._mutate(
            name, lambda job: job.spec().model_copy(update={"enabled": False})
        )

    async def _mutate(self, name: str, change: Callable[[Job], JobSpec]) -> Job:
        for _ in range(CAS_ATTEMPTS):
            job = await self.describe(name)
            spec = change(job)
            now = self._clock.now()
            last_tick = start_of(job)
            if (
                spec.schedule != job.schedule
                or spec.timezone != job.timezone
                or (spec.enabled and not job.enabled)
            ):
                last_tick = max(last_tick, now)
            updated = Job.model_validate(
                spec.model_dump()
                | {
                    "created_at": job.created_at,
                    "updated_at": now,
                    "last_tick": last_tick,
                    "version": job.version,
                }
            )
            if updated.model_dump(exclude={"updated_at"}) == job.model_dump(exclude={"updated_at"}):
                return job
            try:
                return await self._store.update_job(updated)
            except Conflict:
                continue  # the scheduler moved the watermark: apply again on a fresh copy
        raise Conflict(f"job {name}: too many concurrent updates")

    async def delete(self, name: str) -> None:
        """Stop the job's active runs, then delete it with its history. Refused while
        another job chains to it."""
        await self.describe(name)
        for other in await self._store.list_jobs():
            if other.job_name == name:
                continue
            for path, target in other.chain.edges():
                if target == name:
                    raise Conflict(
                        f"job {other.job_name} chains to {name} ({path}); remove it there first"
                    )
        for run in await self._store.active_job_runs(name):
            await self._runs.cancel(run, "job deleted")
        await self._store.delete_job(name)

    async def describe(self, name: str) -> Job:
        job = await self._store.get_job(name)
        if job is None:
            raise NotFound(f"job {name} not found")
        return job

    async def list(self) -> builtins.list[Job]:
        return await self._store.list_jobs()

    # -- runs ------------------------------------------------------------------------------
    async def run_now(
        self,
        name: str,
        *,
        trigger: RunTrigger = RunTrigger.MANUAL,
        parent_run_id: str | None = None,
    ) -> JobRun:
        """Start a run now (also of a disabled job, or one without a schedule), whatever
        the overlap policy: it is PENDING until the scheduler launches it."""
        await self.describe(name)
        if parent_run_id is not None and await self._store.get_job_run(parent_run_id) is None:
            raise NotFound(f"job run {parent_run_id} not found")
        run = JobRun(
            run_id=new_run_id(),
            job_name=name,
            trigger=trigger,
            parent_run_id=parent_run_id,
            created_at=self._clock.now(),
        )
        return await self._store.create_job_run(run)

    async def get_run(self, run_id: str) -> JobRun:
        run = await self._store.get_job_run(run_id)
        if run is None:
            raise NotFound(f"job run {run_id} not found")
        return run

    async def cancel_run(self, run_id: str, reason: str | None = None) -> JobRun:
        """Stop the run's task and mark it CANCELLED (no retry, no chain)."""
        run = await self.get_run(run_id)
        return await self._runs.cancel(run, reason or "cancelled by user")

    async def history(
        self, name: str, *, limit: int = 50, before: str | None = None
    ) -> builtins.list[JobRun]:
        """Runs newest first; ``before`` = the last ``runId`` of the previous page."""
        await self.describe(name)
        return await self._store.list_job_runs(name, limit=limit, before=before)

    async def events(
        self, name: str, *, limit: int = 100, after_id: int | None = None
    ) -> builtins.list[JobEvent]:
        await self.describe(name)
        return await self._store.list_job_events(name, limit=limit, after_id=after_id)

    async def next_fire_times(
        self, name: str, n: int = 5, *, after: datetime | None = None
    ) -> builtins.list[datetime]:
        """The next ``n`` scheduled ticks after ``after`` (default: now, or the job's
        watermark if later), in UTC. A flexible window delays each run by up to its size.
        Empty for a job without a schedule (or past its last ``at()``)."""
        job = await self.describe(name)
        if job.schedule is None:
            return []
        schedule = self.parse(job.schedule, job.timezone)
        start = after or max(self._clock.now(), start_of(job))
        return schedule.ticks_between(
            start, datetime.max.replace(tzinfo=start.tzinfo), min(n, MAX_NEXT_FIRE_TIMES)
        )

    async def wait_for_run(self, run_id: str, timeout: float, *, finished: bool = False) -> JobRun:
        """Return once the run has a task (an attempt with a ``taskId``) or has finished —
        or, with ``finished``, only once it has finished — or at ``timeout`` as it is."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        seq = self._store.known_change_seq()
        run = await self.get_run(run_id)
        while True:
            if not run.active or (not finished and run.task_ids):
                return run
            left = deadline - loop.time()
            if left <= 0:
                return run
            newest = await self._store.wait_for_change(seq, min(left, 1.0))
            if newest <= seq:
                continue
            changes = await self._store.changes_since(seq)
            seq = changes[-1].seq if changes else newest
            ours = [c for c in changes if c.kind == "jobrun" and c.key == run_id]
            if ours:
                value = ours[-1].value
                run = value if isinstance(value, JobRun) else await self.get_run(run_id)
