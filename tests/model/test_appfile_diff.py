"""plan(): an app file against a snapshot of the control plane, pure."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from typing import Any

import pytest

from hatoba.model.appfile import AppFile, load_app_file
from hatoba.model.appfile_diff import (
    NEW_REVISION,
    SECRET,
    SECRET_CHANGED,
    SECRET_UNREADABLE,
    Action,
    FieldChange,
    Kind,
    Plan,
    ServerState,
    plan,
)
from hatoba.model.ecs_import import export_task_definition, parse_task_definition
from hatoba.model.errors import ValidationFailed
from hatoba.model.job import Job, JobSpec
from hatoba.model.params import ParameterType, ParameterView
from hatoba.model.scaling import ScalableTarget
from hatoba.model.scaling_view import ScalingDescription, ScheduledActionView
from hatoba.model.service import (
    CircuitBreaker,
    Deployment,
    DeploymentConfiguration,
    DeploymentStatus,
    SchedulingStrategy,
    Service,
    ServiceStatus,
)
from hatoba.model.taskdef import TaskDefinition

NOW = datetime(2025, 1, 1, tzinfo=UTC)

FILE = """\
parameters:
  /app/url: {type: String, value: "http://x"}
  /app/password: {type: SecureString, value: "${PASSWORD:-hunter2}"}
taskDefinitions:
  web:
    cpu: "256"
    memory: "128"
    containerDefinitions:
      - name: web
        command: [python3, -m, http.server]
        environment: [{name: MODE, value: prod}]
  migrate:
    containerDefinitions:
      - {name: m, command: [python3, migrate.py]}
services:
  api: {taskDefinition: web, desiredCount: 2}
  tool: {taskDefinition: "tools:4"}
beforeDeploy:
  - {taskDefinition: migrate}
"""


def app_of(text: str = FILE, **env: str) -> AppFile:
    return load_app_file(textwrap.dedent(text), "hatoba.yaml", env, app_dir="/srv")


def export_of(body: dict[str, Any], revision: int) -> dict[str, Any]:
    """What ``GET /v1/task-definitions/FAMILY/export`` returns for a registered revision."""
    td = parse_task_definition(body).task_definition
    stored = td.model_copy(update={"revision": revision, "registered_at": NOW})
    # the store keeps only what was given (exclude_unset), then reloads
    reloaded = TaskDefinition.model_validate_json(
        stored.model_dump_json(by_alias=True, exclude_unset=True)
    ).model_copy(update={"revision": revision, "registered_at": NOW})
    return export_task_definition(reloaded, include_assigned=True)


def view(
    name: str, value: str | None, type_: ParameterType = ParameterType.STRING
) -> ParameterView:
    return ParameterView(
        name=name,
        type=type_,
        version=1,
        value=value,
        redacted=value is None,
        last_modified_at=NOW,
    )


def service(name: str, task_definition: str, desired: int = 2, **fields: Any) -> Service:
    deployment = Deployment(
        id="hd-1",
        status=DeploymentStatus.PRIMARY,
        task_definition=task_definition,
        desired_count=desired,
        created_at=NOW,
        updated_at=NOW,
    )
    return Service(
        service_name=name,
        task_definition=task_definition,
        desired_count=desired,
        deployments=[deployment],
        created_at=NOW,
        updated_at=NOW,
        **fields,
    )


def in_sync(app: AppFile) -> ServerState:
    """The server exactly as applying ``app`` leaves it."""
    return ServerState(
        parameters={name: view(name, p.value, p.type) for name, p in app.parameters.items()},
        task_definitions={
            "web": export_of(app.task_definitions["web"].body, 3),
            "migrate": export_of(app.task_definitions["migrate"].body, 1),
            "tools": {"family": "tools", "taskDefinitionArn": "tools:9", "revision": 9},
        },
        services={"api": service("api", "web:3"), "tool": service("tool", "tools:4", 1)},
        revisions=frozenset({"tools:4"}),
    )


def change(p: Plan, kind: Kind, name: str) -> tuple[Action, list[FieldChange]]:
    (found,) = [c for c in p.changes if c.kind == kind and c.name == name]
    return found.action, list(found.fields)


def test_everything_new_is_created_in_apply_order():
    app = app_of()
    state = ServerState(
        task_definitions={"tools": {"family": "tools", "taskDefinitionArn": "tools:9"}},
        revisions=frozenset({"tools:4"}),
    )
    p = plan(app, state)
    order = [(c.kind, c.name, c.action) for c in p.changes]
    assert order == [
        (Kind.PARAMETER, "/app/url", Action.CREATE),
        (Kind.PARAMETER, "/app/password", Action.CREATE),
        (Kind.TASK_DEFINITION, "web", Action.CREATE),
        (Kind.TASK_DEFINITION, "migrate", Action.CREATE),
        (Kind.SERVICE, "api", Action.CREATE),
        (Kind.SERVICE, "tool", Action.CREATE),
    ]
    assert p.has_changes and p.deploys
    _, fields = change(p, Kind.SERVICE, "api")
    assert fields == [
        FieldChange("taskDefinition", None, f"web:{NEW_REVISION}"),
        FieldChange("desiredCount", None, 2),
    ]
    _, fields = change(p, Kind.TASK_DEFINITION, "web")
    assert (
        FieldChange("containerDefinitions[0].command", None, ["python3", "-m", "http.server"])
        in fields
    )
    assert FieldChange("cpu", None, "256") in fields
    _, fields = change(p, Kind.PARAMETER, "/app/password")
    assert fields == [FieldChange("type", None, "SecureString"), FieldChange("value", None, SECRET)]
    assert "hunter2" not in repr(p.to_json())


def test_in_sync_is_all_unchanged():
    app = app_of()
    p = plan(app, in_sync(app))
    assert {c.action for c in p.changes} == {Action.UNCHANGED}
    assert not p.has_changes and not p.deploys
    assert p.current["web"] == "web:3"


def test_defaults_written_out_are_the_same_task_definition():
    explicit = FILE.replace(
        "[{name: MODE, value: prod}]",
        "[{name: MODE, value: prod}]\n"
        "        essential: true\n        cpu: 0\n        portMappings: []",
    )
    app = app_of(explicit)
    state = in_sync(app_of())  # registered from the file without the defaults
    action, fields = change(plan(app, state), Kind.TASK_DEFINITION, "web")
    assert (action, fields) == (Action.UNCHANGED, [])


def test_describe_style_export_with_assigned_fields_compares_equal():
    app = app_of()
    state = in_sync(app)
    export = dict(state.task_definitions["web"])
    export.update(status="ACTIVE", compatibilities=["EC2"], requiresAttributes=[])
    state = ServerState(
        state.parameters, {**state.task_definitions, "web": export}, state.services, state.revisions
    )
    assert change(plan(app, state), Kind.TASK_DEFINITION, "web")[0] == Action.UNCHANGED


def test_a_changed_task_definition_moves_its_services_to_the_new_revision():
    app = app_of(FILE.replace("value: prod", "value: staging"))
    p = plan(app, in_sync(app_of()))
    action, fields = change(p, Kind.TASK_DEFINITION, "web")
    assert action == Action.UPDATE
    assert fields == [
        FieldChange("containerDefinitions[0].environment[0].value", "prod", "staging")
    ]
    action, fields = change(p, Kind.SERVICE, "api")
    assert action == Action.UPDATE
    assert fields == [FieldChange("taskDefinition", "web:3", f"web:{NEW_REVISION}")]
    assert next(c for c in p.changes if c.name == "api").changed == ("taskDefinition",)
    assert change(p, Kind.SERVICE, "tool")[0] == Action.UNCHANGED
    assert p.deploys


def test_drift_a_service_scaled_by_hand_is_an_update():
    app = app_of()
    state = in_sync(app)
    scaled = {**state.services, "api": service("api", "web:3", desired=5)}
    p = plan(app, ServerState(state.parameters, state.task_definitions, scaled, state.revisions))
    action, fields = change(p, Kind.SERVICE, "api")
    assert (action, fields) == (Action.UPDATE, [FieldChange("desiredCount", 5, 2)])
    assert next(c for c in p.changes if c.name == "api").changed == ("desiredCount",)


def test_drift_a_service_moved_to_another_revision_by_hand():
    app = app_of()
    state = in_sync(app)
    moved = {**state.services, "api": service("api", "web:1")}
    p = plan(app, ServerState(state.parameters, state.task_definitions, moved, state.revisions))
    assert change(p, Kind.SERVICE, "api") == (
        Action.UPDATE,
        [FieldChange("taskDefinition", "web:1", "web:3")],
    )


def test_drift_deployment_configuration_and_placement():
    app = app_of(
        FILE.replace(
            "api: {taskDefinition: web, desiredCount: 2}",
            "api:\n    taskDefinition: web\n    desiredCount: 2\n"
            "    deploymentConfiguration:\n"
            "      deploymentCircuitBreaker: {enable: true, rollback: true}",
        )
    )
    state = in_sync(app)
    server_side = service(
        "api",
        "web:3",
        deployment_configuration=DeploymentConfiguration(
            deployment_circuit_breaker=CircuitBreaker(enable=True, rollback=True),
            maximum_percent=200,  # ECS's default spelled out: the same
        ),
        placement_constraints=[{"type": "distinctInstance"}],
    )
    services = {**state.services, "api": server_side}
    p = plan(app, ServerState(state.parameters, state.task_definitions, services, state.revisions))
    action, fields = change(p, Kind.SERVICE, "api")
    assert action == Action.UPDATE
    assert fields == [FieldChange("placementConstraints", [{"type": "distinctInstance"}], [])]


def test_a_deleted_service_is_created_again():
    app = app_of()
    state = in_sync(app)
    draining = {**state.services, "api": service("api", "web:3", status=ServiceStatus.DRAINING)}
    p = plan(app, ServerState(state.parameters, state.task_definitions, draining, state.revisions))
    assert change(p, Kind.SERVICE, "api")[0] == Action.CREATE


def test_scheduling_strategy_cannot_change():
    app = app_of()
    state = in_sync(app)
    daemon = {
        **state.services,
        "api": service("api", "web:3", scheduling_strategy=SchedulingStrategy.DAEMON),
    }
    with pytest.raises(ValidationFailed) as info:
        plan(app, ServerState(state.parameters, state.task_definitions, daemon, state.revisions))
    (error,) = info.value.errors
    assert str(error).startswith(
        "hatoba.yaml:16: services.api.schedulingStrategy: is DAEMON on the server"
    )


def test_daemon_services_ignore_desired_count():
    text = FILE.replace(
        "{taskDefinition: web, desiredCount: 2}",
        "{taskDefinition: web, schedulingStrategy: DAEMON}",
    )
    app = app_of(text)
    state = in_sync(app)
    daemon = {
        **state.services,
        "api": service("api", "web:3", desired=3, scheduling_strategy=SchedulingStrategy.DAEMON),
    }
    p = plan(app, ServerState(state.parameters, state.task_definitions, daemon, state.revisions))
    assert change(p, Kind.SERVICE, "api") == (Action.UNCHANGED, [])


def test_references_the_server_lacks_are_errors_with_lines():
    app = app_of(
        FILE.replace(
            "beforeDeploy:\n  - {taskDefinition: migrate}",
            "beforeDeploy:\n  - {taskDefinition: nowhere}",
        )
    )
    with pytest.raises(ValidationFailed) as info:
        plan(app, ServerState())
    assert [str(e) for e in info.value.errors] == [
        "hatoba.yaml:17: services.tool.taskDefinition: task definition tools:4 not found or not "
        "ACTIVE on the server",
        "hatoba.yaml:19: beforeDeploy[0].taskDefinition: no ACTIVE revision of task definition "
        "family 'nowhere' on the server, and the file does not declare it under taskDefinitions",
    ]


def test_bare_family_not_in_the_file_means_the_latest_on_the_server():
    app = app_of("services:\n  x: {taskDefinition: shared}\n")
    state = ServerState(
        task_definitions={"shared": {"family": "shared", "taskDefinitionArn": "shared:7"}},
        services={"x": service("x", "shared:6", desired=1)},
    )
    p = plan(app, state)
    assert change(p, Kind.SERVICE, "x") == (
        Action.UPDATE,
        [FieldChange("taskDefinition", "shared:6", "shared:7")],
    )
    assert p.resolve(app.services["x"].task_definition) == "shared:7"


def test_resolve_prefers_what_apply_registered():
    app = app_of()
    p = plan(app, in_sync(app))
    ref = app.services["api"].task_definition
    assert p.resolve(ref) == "web:3"
    assert p.resolve(ref, {"web": "web:4"}) == "web:4"
    assert p.resolve(app.services["tool"].task_definition, {"tools": "tools:10"}) == "tools:4"


def test_parameters_plain_and_secret_changes():
    app = app_of(PASSWORD="new-secret")
    state = in_sync(app_of())
    params = {**state.parameters, "/app/url": view("/app/url", "http://old")}
    p = plan(app, ServerState(params, state.task_definitions, state.services, state.revisions))
    assert change(p, Kind.PARAMETER, "/app/url") == (
        Action.UPDATE,
        [FieldChange("value", "http://old", "http://x")],
    )
    assert change(p, Kind.PARAMETER, "/app/password") == (
        Action.UPDATE,
        [FieldChange("value", SECRET, SECRET_CHANGED)],
    )
    text = repr(p.to_json())
    assert "new-secret" not in text and "hunter2" not in text
    assert not p.deploys  # parameters only: no beforeDeploy run


def test_parameter_type_and_description_changes():
    app = app_of(
        "parameters:\n  /a/b: {type: SecureString, value: v, description: why}\n"
        "  /a/c: {type: String, value: plain}\n"
    )
    state = ServerState(
        parameters={
            "/a/b": view("/a/b", "v"),
            "/a/c": view("/a/c", "was-secret", ParameterType.SECURE_STRING),
        }
    )
    p = plan(app, state)
    assert change(p, Kind.PARAMETER, "/a/b") == (
        Action.UPDATE,
        [
            FieldChange("type", "String", "SecureString"),
            FieldChange("description", None, "why"),
        ],
    )
    assert change(p, Kind.PARAMETER, "/a/c") == (
        Action.UPDATE,
        [
            FieldChange("type", "SecureString", "String"),
            FieldChange("value", SECRET, "plain"),
        ],
    )


def test_a_secret_the_token_cannot_decrypt_is_not_comparable():
    app = app_of("parameters:\n  /a/b: {type: SecureString, value: v}\n")
    state = ServerState(parameters={"/a/b": view("/a/b", None, ParameterType.SECURE_STRING)})
    assert change(plan(app, state), Kind.PARAMETER, "/a/b") == (
        Action.UPDATE,
        [FieldChange("value", SECRET, SECRET_UNREADABLE)],
    )


def test_json_form():
    app = app_of()
    state = in_sync(app)
    scaled = {**state.services, "api": service("api", "web:3", desired=4)}
    p = plan(app, ServerState(state.parameters, state.task_definitions, scaled, state.revisions))
    items = p.to_json()
    assert items[-2:] == [
        {
            "kind": "service",
            "name": "api",
            "action": "update",
            "changes": [{"path": "desiredCount", "old": 4, "new": 2}],
        },
        {"kind": "service", "name": "tool", "action": "unchanged", "changes": []},
    ]


JOB_FILE = """\
taskDefinitions:
  report:
    containerDefinitions: [{name: r, command: [python3, report.py]}]
jobs:
  alert: {taskDefinition: report}
  nightly:
    taskDefinition: report
    schedule: cron(0 2 * * ? *)
    timezone: Asia/Tokyo
    retry: {maxAttempts: 3, retryOnFailure: true}
    chain: {onFailure: [alert, pager]}
"""


def stored_job(spec: JobSpec, **changes: Any) -> Job:
    """The job as ``GET /v1/jobs/NAME`` returns it after ``spec`` was applied."""
    body = spec.model_copy(update=changes).model_dump()
    return Job.model_validate(body | {"created_at": NOW, "updated_at": NOW, "last_tick": NOW})


def job_state(app: AppFile, **jobs: Job) -> ServerState:
    report = export_of(app.task_definitions["report"].body, 1)
    return ServerState(task_definitions={"report": report}, jobs=jobs)


def test_jobs_are_created_last_chain_targets_first():
    app = app_of(JOB_FILE)
    pager = stored_job(JobSpec(job_name="pager", task_definition="other"))
    p = plan(app, ServerState(jobs={"pager": pager}))
    assert [(c.kind, c.name, c.action) for c in p.changes] == [
        (Kind.TASK_DEFINITION, "report", Action.CREATE),
        (Kind.JOB, "alert", Action.CREATE),
        (Kind.JOB, "nightly", Action.CREATE),
    ]
    assert change(p, Kind.JOB, "nightly")[1] == [
        FieldChange("taskDefinition", None, "report"),
        FieldChange("schedule", None, "cron(0 2 * * ? *)"),
        FieldChange("timezone", None, "Asia/Tokyo"),
        FieldChange("retry.maxAttempts", None, 3),
        FieldChange("retry.retryOnFailure", None, True),
        FieldChange("retry.backoffSeconds", None, 10.0),  # the defaults of what it sets
        FieldChange("retry.maxBackoffSeconds", None, 600.0),
        FieldChange("chain.onFailure", None, ["alert", "pager"]),
    ]
    assert p.to_json()[-1]["kind"] == "job"


def test_jobs_in_sync_unchanged_and_drift_is_an_update():
    app = app_of(JOB_FILE)
    specs = {name: decl.spec for name, decl in app.jobs.items()}
    pager = stored_job(JobSpec(job_name="pager", task_definition="other"))
    synced = {name: stored_job(spec) for name, spec in specs.items()} | {"pager": pager}
    p = plan(app, job_state(app, **synced))
    assert not p.has_changes and not p.deploys
    # disabled by hand, schedule edited by hand: both go back to the file
    drifted = synced | {
        "nightly": stored_job(specs["nightly"], enabled=False, schedule="rate(1 hour)")
    }
    p = plan(app, job_state(app, **drifted))
    assert change(p, Kind.JOB, "nightly") == (
        Action.UPDATE,
        [
            FieldChange("schedule", "rate(1 hour)", "cron(0 2 * * ? *)"),
            FieldChange("enabled", False, True),
        ],
    )
    assert not p.deploys  # a job change runs no beforeDeploy task


def test_job_references_the_server_lacks_are_errors_with_lines():
    app = app_of(
        "jobs:\n"
        "  a:\n"
        "    taskDefinition: missing\n"
        "    chain: {onSuccess: [ghost]}\n"
        "  b: {taskDefinition: 'report:4'}\n"
    )
    with pytest.raises(ValidationFailed) as info:
        plan(app, ServerState())
    assert [str(e) for e in info.value.errors] == [
        "hatoba.yaml:3: jobs.a.taskDefinition: no ACTIVE revision of task definition family "
        "'missing' on the server, and the file does not declare it under taskDefinitions",
        "hatoba.yaml:4: jobs.a.chain.onSuccess[0]: job ghost is neither in the file nor on "
        "the server",
        "hatoba.yaml:5: jobs.b.taskDefinition: task definition report:4 not found or not "
        "ACTIVE on the server",
    ]


SCALED = """\
taskDefinitions:
  worker:
    containerDefinitions: [{name: w, command: [python3, worker.py]}]
services:
  worker:
    taskDefinition: worker
    scaling:
      minCapacity: 1
      maxCapacity: 6
      policies:
        - policyName: queue
          policyType: TargetTrackingScaling
          targetTrackingConfiguration:
            metric: {sql: {url: "sqlite:////srv/app.db", query: "SELECT count(*) FROM q"}}
            targetValue: 20
            scaleInStabilizationSeconds: 30
"""


def scaling_of(app: AppFile, name: str) -> ScalingDescription:
    """What ``GET .../scaling/describe`` returns once the file's block was applied."""
    decl = app.services[name].scaling
    assert decl is not None
    target = ScalableTarget.model_validate(
        {**decl.target, "serviceName": name, "createdAt": NOW, "updatedAt": NOW}
    )
    return ScalingDescription(
        scalable_target=target,
        policies=[p.model_copy(update={"created_at": NOW}) for p in decl.policies.values()],
        scheduled_actions=[
            ScheduledActionView(**a.model_dump(), next_fire_time=NOW)
            for a in decl.scheduled_actions.values()
        ],
        desired_count=4,
    )


def scaled_state(app: AppFile, **scaling: ScalingDescription) -> ServerState:
    return ServerState(
        task_definitions={"worker": export_of(app.task_definitions["worker"].body, 1)},
        services={"worker": service("worker", "worker:1", desired=4)},
        scaling=scaling,
    )


def scaling_change(p: Plan, name: str = "worker") -> Any:
    (found,) = [c for c in p.changes if c.kind == Kind.SCALING and c.name == name]
    return found


def test_scaling_is_created_after_its_service_and_the_count_is_the_autoscalers():
    app = app_of(SCALED)
    p = plan(app, ServerState())
    kinds = [(c.kind, c.name, c.action) for c in p.changes]
    assert kinds[-2:] == [
        (Kind.SERVICE, "worker", Action.CREATE),
        (Kind.SCALING, "worker", Action.CREATE),
    ]
    created = scaling_change(p)
    assert created.changed == ("target", "policy:queue")
    assert FieldChange("minCapacity", None, 1) in created.fields
    assert FieldChange("policies.queue.targetTrackingConfiguration.targetValue", None, 20.0) in (
        created.fields
    )
    assert FieldChange("desiredCount", None, 1) in change(p, Kind.SERVICE, "worker")[1]

    in_sync = scaled_state(app, worker=scaling_of(app, "worker"))
    p = plan(app, in_sync)  # desiredCount 4 on the server, 1 in the file: not a change
    assert {c.action for c in p.changes} == {Action.UNCHANGED}
    assert scaling_change(p).changed == ()


def test_scaling_changes_name_the_calls_to_make():
    app = app_of(SCALED)
    have = scaling_of(app, "worker")
    extra = have.policies[0].model_copy(update={"policy_name": "old"})
    have = have.model_copy(update={"policies": [*have.policies, extra]})
    edited = SCALED.replace("maxCapacity: 6", "maxCapacity: 8").replace(
        "targetValue: 20", "targetValue: 25"
    )
    edited += (
        "      scheduledActions:\n"
        "        - {scheduledActionName: nights, schedule: 'cron(0 22 * * ? *)', maxCapacity: 2}\n"
    )
    p = plan(app_of(edited), scaled_state(app, worker=have))
    c = scaling_change(p)
    assert c.action == Action.UPDATE
    # with scheduled actions in the file, they own min/max: maxCapacity is not compared
    assert c.changed == ("-policy:old", "policy:queue", "action:nights")
    assert FieldChange("policies.queue.targetTrackingConfiguration.targetValue", 20.0, 25.0) in (
        c.fields
    )
    assert not [f for f in c.fields if f.path == "maxCapacity"]
    assert FieldChange("scheduledActions.nights.maxCapacity", None, 2) in c.fields

    p = plan(
        app_of(SCALED.replace("maxCapacity: 6", "maxCapacity: 8")), scaled_state(app, worker=have)
    )
    c = scaling_change(p)
    assert c.changed == ("target", "-policy:old")
    assert FieldChange("maxCapacity", 6, 8) in c.fields


def test_a_service_without_scaling_in_the_file_loses_the_servers():
    app = app_of(SCALED)
    plain = app_of(SCALED.split("    scaling:", maxsplit=1)[0] + "    desiredCount: 2\n")
    p = plan(plain, scaled_state(app, worker=scaling_of(app, "worker")))
    c = scaling_change(p)
    assert (c.action, c.changed) == (Action.UPDATE, ("deregister",))
    assert FieldChange("policies.queue", "TargetTrackingScaling", None) in c.fields
    # and the count is the file's again
    assert change(p, Kind.SERVICE, "worker") == (
        Action.UPDATE,
        [FieldChange("desiredCount", 4, 2)],
    )
    assert not [c for c in plan(plain, scaled_state(plain)).changes if c.kind == Kind.SCALING]
