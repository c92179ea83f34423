"""Applying an app file (``hatoba.yaml``) to a control plane.

``read_state`` fetches what the server has of what the file names; ``plan`` (pure, in
``hatoba.model.appfile_diff``) says what differs; ``apply_plan`` writes, in this order:

    parameters ─▶ task definitions ─▶ beforeDeploy tasks ─▶ services ─▶ jobs
    (put new     (register a new      (run each, wait;      (create, or   (create, or
     versions)    revision if changed)  exit ≠ 0 aborts)      update only   replace the
                                                              the changed   spec; chain
                                                              fields)       targets first)

The beforeDeploy tasks (migrations) run only when a task definition or a service changes,
and a failing one stops the apply before any service changes. Services' autoscaling
(``apply_scaling``) is applied right after the services. Everything the file says is
validated (``load_app_file``, the server's check of each ``scaling:`` block, and ``plan``)
before the first write.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from hatoba.client.access import AccessClient
from hatoba.client.apply_scaling import apply_scaling, check_scaling, read_scaling, stop_scaling
from hatoba.client.errors import ApiError, ClientError
from hatoba.client.http import HatobaClient
from hatoba.model.appfile import AppFile, BeforeDeployTask, TaskDefRef
from hatoba.model.appfile_diff import Action, Change, Kind, Plan, ServerState, plan
from hatoba.model.params import ParameterView
from hatoba.model.service import (
    DeploymentStatus,
    RolloutState,
    Service,
    ServiceSpec,
    ServiceStatus,
    ServiceUpdate,
)
from hatoba.model.task import LastStatus, Task
from hatoba.model.taskdef import TaskDefinitionStatus

STARTED_BY = "hatoba-apply"
LOG_TAIL_LINES = 20
STOP_GRACE_SECONDS = 60.0

Report = Callable[[str, bool], None]
"""Progress: a message, and whether it says something is done (else: starting)."""


def _quiet(_: str, __: bool) -> None:
    return None


class BeforeDeployFailed(ClientError):
    """A beforeDeploy task did not exit 0: nothing after it was applied."""

    def __init__(self, step: BeforeDeployTask, reason: str, task: Task | None = None) -> None:
        super().__init__(f"beforeDeploy[{step.index}] ({step.task_definition}): {reason}")
        self.step = step
        self.reason = reason
        self.task = task
        self.logs: list[str] = []


@dataclass
class ApplyResult:
    plan: Plan
    registered: dict[str, str] = field(default_factory=dict)  # family -> new "family:rev"
    parameters: dict[str, int] = field(default_factory=dict)  # name -> version written
    before_deploy: list[Task] = field(default_factory=list)
    services: dict[str, str] = field(default_factory=dict)  # changed service -> its target
    jobs: dict[str, str] = field(default_factory=dict)  # changed job -> created / updated

    def summary(self) -> dict[str, int]:
        """How many were created, updated and left unchanged."""
        out = {a.value: 0 for a in Action}
        for change in self.plan.changes:
            out[change.action.value] += 1
        return out


# -- reading ----------------------------------------------------------------------------------


def _missing(exc: ApiError) -> bool:
    return exc.status == 404


def read_state(client: HatobaClient, app: AppFile) -> ServerState:
    """What the control plane has now of everything ``app`` declares or refers to."""
    access = AccessClient(client)
    parameters: dict[str, ParameterView] = {}
    for name in app.parameters:
        view = _read_parameter(access, name)
        if view is not None:
            parameters[name] = view
    refs = _refs(app)
    families = list(
        dict.fromkeys([*app.task_definitions, *(r.family for r in refs if r.revision is None)])
    )
    exports: dict[str, dict[str, Any]] = {}
    for family in families:
        try:
            exports[family] = client.export_task_definition(family)
        except ApiError as exc:
            if not _missing(exc):
                raise
    revisions: set[str] = set()
    for ref in {str(r) for r in refs if r.revision is not None}:
        try:
            td = client.describe_task_definition(ref)
        except ApiError as exc:
            if not _missing(exc):
                raise
            continue
        if td.status == TaskDefinitionStatus.ACTIVE:
            revisions.add(ref)
    services: dict[str, Service] = {}
    for name in app.services:
        try:
            services[name] = client.describe_service(name)
        except ApiError as exc:
            if not _missing(exc):
                raise
    jobs = {j.job_name: j for j in client.list_jobs()} if app.jobs else {}
    scaling = read_scaling(client, app)
    return ServerState(parameters, exports, services, frozenset(revisions), jobs, scaling=scaling)


def _read_parameter(access: AccessClient, name: str) -> ParameterView | None:
    """The latest version, decrypted when this token may (a SecureString the token cannot
    decrypt comes back redacted, and the plan says it cannot compare). Asked for decrypted
    whatever the file's type, so a change of type is compared too."""
    try:
        return access.get_parameter(name, decrypt=True)
    except ApiError as exc:
        if _missing(exc):
            return None
        if exc.status != 403:
            raise
    try:
        return access.get_parameter(name)
    except ApiError as exc:
        if _missing(exc):
            return None
        raise


def _refs(app: AppFile) -> list[TaskDefRef]:
    return (
        [s.task_definition for s in app.services.values()]
        + [t.task_definition for t in app.before_deploy]
        + [j.task_definition for j in app.jobs.values()]
    )


def plan_app(client: HatobaClient, app: AppFile) -> Plan:
    """Read the server's state and plan; ``ValidationFailed`` when the file names what the
    server does not have."""
    state = read_state(client, app)
    check_scaling(client, app)  # what only the server can check (metric specs)
    return plan(app, state)


# -- writing ----------------------------------------------------------------------------------


def apply_plan(
    client: HatobaClient,
    app: AppFile,
    the_plan: Plan,
    *,
    report: Report = _quiet,
    log_tail: int = LOG_TAIL_LINES,
) -> ApplyResult:
    """Apply ``the_plan`` (made by ``plan_app`` for ``app``); raises ``BeforeDeployFailed``
    (services untouched) when a beforeDeploy task fails."""
    result = ApplyResult(the_plan)
    access = AccessClient(client)
    for change in the_plan.of(Kind.PARAMETER):
        if change.action == Action.UNCHANGED:
            continue
        param = app.parameters[change.name]
        view = access.put_parameter(
            param.name,
            param.value,
            type_=param.type,
            overwrite=change.action == Action.UPDATE,
            description=param.description,
        )
        result.parameters[param.name] = view.version
        report(f"parameter {param.name}: {_done(change)} (version {view.version})", True)
    for change in the_plan.of(Kind.TASK_DEFINITION):
        if change.action == Action.UNCHANGED:
            continue
        td, _warnings = client.register_task_definition(app.task_definitions[change.name].body)
        result.registered[change.name] = td.arn
        report(f"task definition {change.name}: registered {td.arn}", True)
    if the_plan.deploys:
        for step in app.before_deploy:
            arn = the_plan.resolve(step.task_definition, result.registered)
            report(f"beforeDeploy[{step.index}]: running {arn}...", False)
            task = run_before_deploy(client, step, arn, log_tail=log_tail)
            result.before_deploy.append(task)
            report(f"beforeDeploy[{step.index}]: {arn} exited 0 (task {task.task_id})", True)
    for change in the_plan.of(Kind.SERVICE):
        if change.action == Action.UNCHANGED:
            continue
        decl = app.services[change.name]
        arn = the_plan.resolve(decl.task_definition, result.registered)
        if change.action == Action.CREATE:
            client.create_service(decl.spec.model_copy(update={"task_definition": arn}))
        else:
            client.update_service(change.name, service_update(change, decl.spec, arn))
        result.services[change.name] = arn
        what = arn if change.action == Action.CREATE else ", ".join(change.changed)
        report(f"service {change.name}: {_done(change)} ({what})", True)
    for change in the_plan.of(Kind.SCALING):  # a scalable target needs its service
        if change.action == Action.UNCHANGED:
            continue
        what = apply_scaling(client, change, app.services[change.name].scaling)
        report(f"scaling {change.name}: {_done(change)} ({what})", True)
    for change in the_plan.of(Kind.JOB):  # in the file's apply order: chain targets first
        if change.action == Action.UNCHANGED:
            continue
        spec = app.jobs[change.name].spec
        if change.action == Action.CREATE:
            client.create_job(spec)
        else:
            client.update_job(spec)
        result.jobs[change.name] = _done(change)
        what = spec.schedule or "no schedule"
        report(f"job {change.name}: {_done(change)} ({what}, {spec.timezone})", True)
    return result


def _done(change: Change) -> str:
    return "created" if change.action == Action.CREATE else "updated"


def service_update(change: Change, spec: ServiceSpec, arn: str) -> ServiceUpdate:
    """An UpdateService carrying only what differs (``arn``: the resolved task definition)."""
    values: dict[str, Any] = {
        "taskDefinition": arn,
        "desiredCount": spec.desired_count,
        "deploymentConfiguration": spec.deployment_configuration,
        "placementConstraints": spec.placement_constraints,
        "placementStrategy": spec.placement_strategy,
        "healthCheckGracePeriodSeconds": spec.health_check_grace_period_seconds,
    }
    return ServiceUpdate.model_validate({k: values[k] for k in change.changed if k in values})


def run_before_deploy(
    client: HatobaClient, step: BeforeDeployTask, arn: str, *, log_tail: int = LOG_TAIL_LINES
) -> Task:
    """Run one beforeDeploy task to its end; ``BeforeDeployFailed`` unless it exits 0.
    Interrupted (Ctrl-C), the task is stopped before the interrupt goes on."""
    started = client.run_task(arn, started_by=STARTED_BY, timeout_seconds=step.timeout_seconds)
    if started.failures or not started.tasks:
        why = "; ".join(f.detail or f.reason for f in started.failures) or "no task started"
        raise BeforeDeployFailed(step, f"could not start: {why}")
    task = started.tasks[0]
    try:
        final = client.wait_task(
            task.task_id, LastStatus.STOPPED, timeout=step.timeout_seconds + STOP_GRACE_SECONDS
        )
    except KeyboardInterrupt:
        client.stop_task(task.task_id, reason="Interrupted (Ctrl-C) during hatoba apply")
        raise
    if final.last_status != LastStatus.STOPPED:
        client.stop_task(task.task_id, reason="hatoba apply: beforeDeploy timed out")
        failed = BeforeDeployFailed(step, f"still running after {step.timeout_seconds:g}s", final)
    elif final.exit_code == 0:
        return final
    else:
        failed = BeforeDeployFailed(step, _outcome(final), final)
    failed.logs = tail_logs(client, task.task_id, log_tail)
    raise failed


def _outcome(task: Task) -> str:
    code = task.exit_code
    parts = [f"exited {code}" if code is not None else "stopped without an exit code"]
    if task.stop_code is not None:
        parts.append(f"stopCode {task.stop_code.value}")
    if task.stopped_reason:
        parts.append(task.stopped_reason)
    return f"task {task.task_id} " + "; ".join(parts)


def tail_logs(client: HatobaClient, task_id: str, lines: int) -> list[str]:
    """The last ``lines`` lines of a task's output (stdout and stderr, in order)."""
    try:
        got = list(client.stream_logs(task_id, follow=False))
    except ClientError:
        return []
    return [line.data.decode("utf-8", "replace") for line in got[-lines:]] if lines else []


# -- waiting for steady state -----------------------------------------------------------------


@dataclass(frozen=True)
class Steadiness:
    state: str  # "steady", "waiting" or "failed"
    reason: str = ""


def steadiness(service: Service, target: str | None = None) -> Steadiness:
    """Whether a service has settled: its PRIMARY deployment (on ``target``, when given)
    COMPLETED, no other deployment still holding tasks, and as many running as desired."""
    primary = service.primary
    if service.status != ServiceStatus.ACTIVE:
        return Steadiness("failed", f"service is {service.status.value}")
    if primary is None:
        return Steadiness("waiting", "no primary deployment yet")
    if primary.rollout_state == RolloutState.FAILED:
        return Steadiness("failed", primary.rollout_state_reason or "rollout FAILED")
    if target is not None and primary.task_definition != target:
        if primary.rollback_of is not None:
            return Steadiness("failed", f"rolled back to {primary.task_definition} (from {target})")
        return Steadiness("failed", f"now runs {primary.task_definition}, changed meanwhile")
    others = [
        d for d in service.deployments if d is not primary and d.status != DeploymentStatus.INACTIVE
    ]
    if primary.rollout_state != RolloutState.COMPLETED or others:
        return Steadiness("waiting", f"rollout {primary.rollout_state.value}")
    if service.running_count != service.desired_count or service.pending_count:
        return Steadiness("waiting", f"{service.running_count}/{service.desired_count} running")
    return Steadiness("steady")


def wait_steady(
    client: HatobaClient,
    targets: dict[str, str | None],
    *,
    timeout: float,
    poll: float = 1.0,
    on_poll: Callable[[dict[str, Service]], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Steadiness]:
    """Poll each service until it is steady or failed, or ``timeout`` passes (then the
    ones still waiting say so)."""
    deadline = clock() + timeout
    done: dict[str, Steadiness] = {}
    while True:
        seen: dict[str, Service] = {}
        for name, target in targets.items():
            if name in done:
                continue
            service = client.describe_service(name)
            seen[name] = service
            state = steadiness(service, target)
            if state.state != "waiting":
                done[name] = state
        if on_poll is not None:
            on_poll(seen)
        if len(done) == len(targets):
            return done
        if clock() >= deadline:
            for name, target in targets.items():
                if name not in done:
                    last = steadiness(seen[name], target) if name in seen else None
                    why = last.reason if last else ""
                    done[name] = Steadiness("waiting", f"not steady after {timeout:g}s: {why}")
            return done
        sleep(poll)


def stop_services(client: HatobaClient, names: Iterable[str]) -> None:
    """Scale each to 0 (the tasks then stop; see ``live_tasks``), its autoscaling
    deregistered first."""
    names = list(names)
    stop_scaling(client, names)
    for name in names:
        client.scale_service(name, 0)


def live_tasks(client: HatobaClient, names: Iterable[str]) -> dict[str, list[Task]]:
    out: dict[str, list[Task]] = {}
    for name in names:
        try:
            out[name] = client.service_tasks(name, live_only=True)
        except ApiError as exc:
            if not _missing(exc):
                raise
            out[name] = []
    return out
