"""load_app_file: hatoba.yaml parsed and validated, every problem at ``FILE:LINE: path``."""

from __future__ import annotations

import textwrap

import pytest

from hatoba.model.appfile import (
    DEFAULT_BEFORE_DEPLOY_TIMEOUT,
    AppFile,
    TaskDefRef,
    format_path,
    load_app_file,
    split_path,
)
from hatoba.model.errors import ValidationFailed
from hatoba.model.params import ParameterType

GOOD = """\
name: cardscan
parameters:
  /cardscan/db: {type: String, value: "${HATOBA_APP_DIR}/cardscan.db"}
  /cardscan/hosts: {type: StringList, value: "a,b", description: the hosts}
  /cardscan/password: {type: SecureString, value: "${DB_PASSWORD}"}
taskDefinitions:
  cardscan-api:
    cpu: "256"
    memory: "128"
    containerDefinitions:
      - name: web
        command: [python3, -m, api]
        environment:
          - {name: DB, value: "${DB_URL:-sqlite:///x.db}"}
  cardscan-migrate:
    family: cardscan-migrate
    containerDefinitions:
      - {name: migrate, command: [python3, migrate.py]}
services:
  api: {taskDefinition: cardscan-api, desiredCount: 2}
  worker:
    taskDefinition: "worker:3"
    desiredCount: 1
    deploymentConfiguration: {maximumPercent: 150, minimumHealthyPercent: 50}
beforeDeploy:
  - {taskDefinition: cardscan-migrate, timeoutSeconds: 600}
  - {taskDefinition: shared-tool}
"""


def load(text: str, env: dict[str, str] | None = None, name: str = "hatoba.yaml") -> AppFile:
    return load_app_file(textwrap.dedent(text), name, env or {}, app_dir="/srv/app")


def problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ValidationFailed) as info:
        load(text, env)
    assert info.value.subject == "hatoba.yaml"
    return [str(e) for e in info.value.errors]


def test_a_good_file_loads_every_section():
    app = load(GOOD, {"DB_PASSWORD": "hunter2"})
    assert app.name == "cardscan"
    db = app.parameters["/cardscan/db"]
    assert (db.type, db.value) == (ParameterType.STRING, "/srv/app/cardscan.db")
    assert app.parameters["/cardscan/hosts"].description == "the hosts"
    assert app.parameters["/cardscan/password"].value == "hunter2"
    assert "hunter2" not in repr(app.parameters["/cardscan/password"])
    api = app.task_definitions["cardscan-api"]
    assert api.body["family"] == "cardscan-api"  # filled in from the key
    assert api.task_definition.cpu == 256
    env = api.task_definition.container_definitions[0].environment
    assert env[0].value == "sqlite:///x.db"
    assert app.services["api"].spec.desired_count == 2
    assert app.services["api"].spec.service_name == "api"
    assert app.services["api"].task_definition == TaskDefRef("cardscan-api", None, declared=True)
    assert app.services["worker"].task_definition == TaskDefRef("worker", 3)
    worker_config = app.services["worker"].spec.deployment_configuration
    assert worker_config.maximum_percent == 150
    first, second = app.before_deploy
    assert first.task_definition.declared and first.timeout_seconds == 600
    assert second.task_definition == TaskDefRef("shared-tool")
    assert second.timeout_seconds == DEFAULT_BEFORE_DEPLOY_TIMEOUT
    assert app.warnings == []


def test_empty_file_and_empty_sections_are_an_empty_app():
    assert load("").services == {}
    app = load("parameters:\nservices:\ntaskDefinitions:\nbeforeDeploy:\n")
    assert (app.parameters, app.services, app.before_deploy) == ({}, {}, [])


def test_substitution_defaults_escapes_and_app_dir():
    app = load(
        """\
        parameters:
          /a/one: {type: String, value: "${X}-${Y:-dflt}-${EMPTY:-was empty}-$${X}-$HOME"}
          /a/two: {type: String, value: "${HATOBA_APP_DIR}"}
        """,
        {"X": "ex", "EMPTY": "", "HATOBA_APP_DIR": "ignored: built in"},
    )
    assert app.parameters["/a/one"].value == "ex-dflt-was empty-${X}-$HOME"
    assert app.parameters["/a/two"].value == "/srv/app"


def test_app_dir_defaults_to_the_files_absolute_directory(tmp_path):
    path = tmp_path / "hatoba.yaml"
    text = 'parameters:\n  /a/b: {type: String, value: "${HATOBA_APP_DIR}"}\n'
    app = load_app_file(text, str(path), {})
    assert app.parameters["/a/b"].value == str(tmp_path)


def test_substituted_numbers_validate_as_numbers():
    app = load(
        """\
        services:
          api: {taskDefinition: web, desiredCount: "${COUNT:-3}"}
        """
    )
    assert app.services["api"].spec.desired_count == 3


def test_substitution_errors_name_the_line():
    assert problems(
        """\
        parameters:
          /a/b: {type: String, value: "${NOPE}"}
          /a/c: {type: String, value: "${1BAD}"}
          /a/d: {type: String, value: "oops ${"}
        """
    ) == [
        'hatoba.yaml:2: parameters["/a/b"].value: undefined variable ${NOPE} '
        "(set it, or write ${NOPE:-default})",
        'hatoba.yaml:3: parameters["/a/c"].value: bad substitution ${1BAD}: '
        "write ${NAME} or ${NAME:-default}",
        'hatoba.yaml:4: parameters["/a/d"].value: unterminated ${ (write $${ for a literal ${)',
    ]


def test_unknown_top_level_key_says_did_you_mean():
    assert problems("servces: {}\nname: x\n") == [
        "hatoba.yaml:1: servces: unknown top-level key; did you mean 'services'?"
    ]
    (only,) = problems("colour: red\n")
    assert only.startswith("hatoba.yaml:1: colour: unknown top-level key (expected one of:")


def test_yaml_syntax_error_names_the_line():
    assert problems("services:\n  api: {taskDefinition: web\n  other: 1\n") == [
        "hatoba.yaml:3: invalid YAML: expected ',' or '}', but got ':'"
    ]


def test_duplicate_key_names_the_line_and_not_the_value():
    (only,) = problems(
        """\
        parameters:
          /a/b: {type: SecureString, value: first-secret}
          /a/b: {type: SecureString, value: second-secret}
        """
    )
    assert only.startswith("hatoba.yaml:3: invalid YAML: found duplicate key")
    assert "secret" not in only.replace("SecureString", "")


def test_not_a_mapping():
    assert problems("- a\n- b\n") == [
        "hatoba.yaml:1: the app file must be a mapping (parameters:, services:, ...)"
    ]
    assert problems("services: [a]\nbeforeDeploy: {a: 1}\n") == [
        "hatoba.yaml:1: services: must be a mapping",
        "hatoba.yaml:2: beforeDeploy: must be a list",
    ]


def test_task_definition_errors_point_at_the_field_line():
    errors = problems(
        """\
        taskDefinitions:
          cardscan-api:
            containerDefinitions:
              - name: web
                command: [sleep, "1"]
                memory: lots
              - name: web
                comand: [x]
          other:
            family: not-other
            containerDefinitions: []
        """
    )
    assert errors == [
        "hatoba.yaml:6: taskDefinitions.cardscan-api.containerDefinitions[0].memory: "
        "must be an integer (MiB)",
        "hatoba.yaml:8: taskDefinitions.cardscan-api.containerDefinitions[1].comand: "
        "unknown field; did you mean 'command'?",
        "hatoba.yaml:10: taskDefinitions.other.family: must be 'other' (the key) or left out",
    ]


def test_missing_fields_point_at_their_parent():
    errors = problems(
        """\
        taskDefinitions:
          api:
            containerDefinitions:
              - command: [sleep, "1"]
        services:
          web:
            desiredCount: 1
        """
    )
    assert errors == [
        "hatoba.yaml:4: taskDefinitions.api.containerDefinitions[0].name: field required",
        "hatoba.yaml:6: services.web.taskDefinition: field required",
    ]


def test_task_definition_cross_field_errors_are_located():
    (only,) = problems(
        """\
        taskDefinitions:
          api:
            containerDefinitions:
              - name: a
                command: ["true"]
                dependsOn: [{containerName: ghost, condition: START}]
        """
    )
    assert only.startswith("hatoba.yaml:6: taskDefinitions.api.containerDefinitions[0].dependsOn")


def test_task_definition_warnings_carry_file_and_line():
    app = load(
        """\
        taskDefinitions:
          api:
            networkMode: awsvpc
            containerDefinitions:
              - name: web
                image: nginx:1.25
                command: [sleep, "1"]
        """
    )
    assert [str(w) for w in app.warnings] == [
        "hatoba.yaml:3: taskDefinitions.api.networkMode: not used by hatoba (kept, exported back)",
        "hatoba.yaml:6: taskDefinitions.api.containerDefinitions[0].image: recorded; the process "
        "driver runs entryPoint + command, not the image",
    ]
    assert app.task_definitions["api"].body["networkMode"] == "awsvpc"


def test_service_errors():
    errors = problems(
        """\
        services:
          api:
            taskDefinition: web
            desiredCont: 3
            schedulingStrategy: SOMETIMES
            deploymentConfiguration:
              maximumPercent: 50
              deploymentCircuitBreaker: {enable: true, rollbak: true}
          worker: {taskDefinition: "not a ref!", desiredCount: -1}
          9lives: {taskDefinition: web}
          named: {taskDefinition: web, serviceName: other}
          plain: 3
        """
    )
    assert errors == [
        "hatoba.yaml:4: services.api.desiredCont: unknown field; did you mean 'desiredCount'?",
        "hatoba.yaml:5: services.api.schedulingStrategy: must be 'REPLICA' or 'DAEMON'",
        "hatoba.yaml:7: services.api.deploymentConfiguration.maximumPercent: must be ≥ 100",
        "hatoba.yaml:8: services.api.deploymentConfiguration.deploymentCircuitBreaker.rollbak: "
        "unknown field; did you mean 'rollback'?",
        "hatoba.yaml:9: services.worker.desiredCount: must be ≥ 0",
        "hatoba.yaml:9: services.worker.taskDefinition: 'not a ref!' is not FAMILY or "
        "FAMILY:REVISION",
        "hatoba.yaml:10: services.9lives: service name must be a letter, then letters, digits, "
        "- or _ (at most 255)",
        "hatoba.yaml:11: services.named.serviceName: must be 'named' (the key) or left out",
        "hatoba.yaml:12: services.plain: must be a mapping (ECS CreateService fields)",
    ]


def test_service_task_definition_forms():
    app = load(
        """\
        taskDefinitions:
          web: {containerDefinitions: [{name: w, command: ["true"]}]}
        services:
          a: {taskDefinition: web}
          b: {taskDefinition: "web:4"}
          c: {taskDefinition: "arn:aws:ecs:eu-west-1:123:task-definition/web:7"}
          d: {taskDefinition: elsewhere}
        """
    )
    refs = {name: s.task_definition for name, s in app.services.items()}
    assert refs == {
        "a": TaskDefRef("web", None, declared=True),
        "b": TaskDefRef("web", 4),
        "c": TaskDefRef("web", 7),
        "d": TaskDefRef("elsewhere"),
    }


def test_parameter_errors():
    errors = problems(
        """\
        parameters:
          no-slash: {type: String, value: x}
          /a/type: {type: Strin, value: x}
          /a/empty: {type: String, value: ""}
          /a/list: {type: StringList, value: "a,,b"}
          /a/typo: {type: String, value: x, descripton: y}
          /a/missing: {}
          /a/number: {type: String, value: 8080}
          /a/float: {type: String, value: 1.5}
          /aws/x: {type: String, value: x}
        """
    )
    assert errors == [
        "hatoba.yaml:2: parameters.no-slash: must start with '/', e.g. /prod/app/db/password",
        'hatoba.yaml:3: parameters["/a/type"].type: must be one of String, StringList, '
        "SecureString",
        'hatoba.yaml:4: parameters["/a/empty"].value: must not be empty',
        'hatoba.yaml:5: parameters["/a/list"].value: a StringList is comma-separated with no '
        "empty items",
        'hatoba.yaml:6: parameters["/a/typo"].descripton: unknown field; did you mean '
        "'description'?",
        'hatoba.yaml:7: parameters["/a/missing"].type: field required',
        'hatoba.yaml:7: parameters["/a/missing"].value: field required',
        'hatoba.yaml:9: parameters["/a/float"].value: must be a string (quote it: "...")',
        "hatoba.yaml:10: parameters[\"/aws/x\"]: may not begin with 'aws' or 'ssm' (any case): "
        "reserved",
    ]


def test_before_deploy_errors():
    errors = problems(
        """\
        beforeDeploy:
          - {taskDefinition: migrate, timeoutSecs: 5}
          - {timeoutSeconds: 0}
          - just-a-string
        """
    )
    assert errors == [
        "hatoba.yaml:2: beforeDeploy[0].timeoutSecs: unknown field; did you mean 'timeoutSeconds'?",
        "hatoba.yaml:3: beforeDeploy[1].taskDefinition: field required",
        "hatoba.yaml:3: beforeDeploy[1].timeoutSeconds: must be a number > 0 (seconds)",
        "hatoba.yaml:4: beforeDeploy[2]: must be a mapping {taskDefinition: ..., ...}",
    ]


def test_every_problem_at_once_in_file_order():
    errors = problems(
        """\
        services:
          api: {taskDefinition: web, desiredCount: lots}
        taskDefinitions:
          web: {containerDefinitions: [{name: w, cpu: many, command: ["true"]}]}
        parameters:
          /p/q: {type: String, value: "${UNSET}"}
        extra: 1
        """
    )
    assert [e.split(":")[1] for e in errors] == ["2", "4", "6", "7"]


def test_paths_format_and_parse_back():
    parts = ("taskDefinitions", "cardscan-api", "containerDefinitions", 0, "logConfiguration")
    assert format_path(parts) == "taskDefinitions.cardscan-api.containerDefinitions[0]" + (
        ".logConfiguration"
    )
    assert format_path(("parameters", "/a/b", "value")) == 'parameters["/a/b"].value'
    assert split_path("containerDefinitions[1].logConfiguration.options['awslogs-group']") == (
        "containerDefinitions",
        1,
        "logConfiguration",
        "options",
        "awslogs-group",
    )
    assert split_path("") == ()


JOBS = """\
taskDefinitions:
  report:
    containerDefinitions: [{name: r, command: [python3, report.py]}]
jobs:
  page:
    taskDefinition: "pager:2"
  nightly:
    taskDefinition: report
    schedule: cron(0 2 * * ? *)
    timezone: Asia/Tokyo
    retry: {maxAttempts: 3, retryOnFailure: true}
    timeoutSeconds: 600
    chain: {onFailure: [page, elsewhere]}
    notifications:
      - {url: "${HOOK:-https://hooks.example.com/x}", format: slack}
  weekly: {taskDefinition: report, schedule: "0 6 * * 1", enabled: false}
"""


def test_jobs_load_with_defaults_refs_and_chain_targets_first():
    app = load(JOBS)
    assert list(app.jobs) == ["page", "nightly", "weekly"]
    nightly = app.jobs["nightly"]
    assert nightly.task_definition == TaskDefRef("report", None, declared=True)
    assert app.jobs["page"].task_definition == TaskDefRef("pager", 2)
    spec = nightly.spec
    assert (spec.job_name, spec.schedule, spec.timezone) == (
        "nightly",
        "cron(0 2 * * ? *)",
        "Asia/Tokyo",
    )
    assert spec.retry.max_attempts == 3 and spec.retry.retry_on_failure
    assert spec.chain.on_failure == ["page", "elsewhere"]  # "elsewhere": on the server
    assert spec.notifications[0].url == "https://hooks.example.com/x"
    assert spec.overlap_policy.value == "Forbid"  # the default
    assert app.jobs["weekly"].spec.enabled is False
    # a job is applied after the file's jobs it chains to
    chained = load(
        "jobs:\n  a: {taskDefinition: x, chain: {always: [b]}}\n  b: {taskDefinition: x}\n"
    )
    assert list(chained.jobs) == ["b", "a"]


def test_job_errors_name_the_line_field_and_cron_field():
    errors = problems(
        """\
        jobs:
          nightly:
            taskDefinition: report
            schedule: cron(0 25 * * ? *)
            timezone: Asia/Tokio
            overlapPolicy: Sometimes
            retry: {maxAttempts: 0, retryOnFailur: true}
            timeoutSecond: 5
          manual: {taskDefinition: report, timezone: Nowhere/Land}
          bad name: {taskDefinition: report}
          other: {jobName: else, taskDefinition: report}
          loose: just-a-string
          nothing: {schedule: rate(5 minutes)}
          wrong: {taskDefinition: "report:x"}
        """
    )
    assert errors == [
        "hatoba.yaml:4: jobs.nightly.schedule: cron hours '25': 25 is out of range 0-23",
        "hatoba.yaml:5: jobs.nightly.timezone: timezone 'Asia/Tokio' is not a known IANA "
        "time zone (e.g. UTC, Europe/London, America/New_York)",
        "hatoba.yaml:6: jobs.nightly.overlapPolicy: must be 'Allow', 'Forbid' or 'Replace'",
        "hatoba.yaml:7: jobs.nightly.retry.maxAttempts: must be ≥ 1",
        "hatoba.yaml:7: jobs.nightly.retry.retryOnFailur: unknown field; did you mean "
        "'retryOnFailure'?",
        "hatoba.yaml:8: jobs.nightly.timeoutSecond: unknown field; did you mean 'timeoutSeconds'?",
        "hatoba.yaml:9: jobs.manual.timezone: 'Nowhere/Land' is not a known IANA time zone "
        "(e.g. UTC, Asia/Tokyo)",
        """hatoba.yaml:10: jobs["bad name"]: job name must be a letter, then letters, """
        "digits, - or _ (at most 255)",
        "hatoba.yaml:11: jobs.other.jobName: must be 'other' (the key) or left out",
        "hatoba.yaml:12: jobs.loose: must be a mapping (taskDefinition, schedule, ...)",
        "hatoba.yaml:13: jobs.nothing.taskDefinition: field required",
        "hatoba.yaml:14: jobs.wrong.taskDefinition: 'report:x' is not FAMILY or FAMILY:REVISION",
    ]


def test_a_chain_cycle_in_the_file_is_an_error_at_its_entry():
    errors = problems(
        """\
        jobs:
          extract: {taskDefinition: etl, chain: {onSuccess: [load]}}
          load:
            taskDefinition: etl
            chain:
              always: [extract]
        """
    )
    assert errors == [
        "hatoba.yaml:6: jobs.load.chain.always[0]: chain cycle: extract → load → extract"
    ]


SCALED = """\
services:
  worker:
    taskDefinition: worker
    scaling:
      minCapacity: 2
      maxCapacity: 8
      suspendedState: {dynamicScalingInSuspended: true}
      policies:
        - policyName: backlog
          policyType: TargetTrackingScaling
          targetTrackingConfiguration:
            metric: {redisList: {url: "redis://cache:6379/0", key: jobs}}
            targetValue: 10
      scheduledActions:
        - {scheduledActionName: nights, schedule: "cron(0 22 * * ? *)", maxCapacity: 2,
           timezone: Asia/Tokyo}
  pinned: {taskDefinition: worker, desiredCount: 5, scaling: {minCapacity: 1, maxCapacity: 3}}
"""


def test_scaling_blocks_load_and_the_count_starts_at_min():
    app = load(SCALED)
    worker = app.services["worker"]
    assert worker.spec.desired_count == 2  # no desiredCount: minCapacity
    assert app.services["pinned"].spec.desired_count == 5  # given: kept, the loop clamps it
    scaling = worker.scaling
    assert scaling is not None
    assert scaling.target == {
        "minCapacity": 2,
        "maxCapacity": 8,
        "suspendedState": {
            "dynamicScalingInSuspended": True,
            "dynamicScalingOutSuspended": False,
            "scheduledScalingSuspended": False,
        },
        "scaleToZeroCooldownSeconds": 300,
    }
    policy = scaling.policies["backlog"]
    tt = policy.target_tracking_configuration
    assert tt is not None and tt.target_value == 10 and tt.metric_type.value == "AverageValue"
    assert tt.metric == {"redisList": {"url": "redis://cache:6379/0", "key": "jobs"}}
    assert scaling.scheduled_actions["nights"].timezone == "Asia/Tokyo"
    assert scaling.block["policies"][0]["policyName"] == "backlog"  # as written, for the server
    assert app.services["pinned"].scaling is not None
    assert load("services: {api: {taskDefinition: x}}").services["api"].scaling is None


def test_scaling_errors_name_the_line_and_field():
    errors = problems(
        """\
        services:
          worker:
            taskDefinition: worker
            scaling:
              minCapacity: 5
              maxCapacity: 2
              polices: []
              policies:
                - policyName: backlog
                  policyType: TargetTrackingScaling
                  targetTrackingConfiguration:
                    metric: {redisList: {url: "redis://x", key: k}}
                    targetValu: 10
                - policyName: backlog
                  policyType: StepScaling
                  stepScalingConfiguration: {metric: {cpu: {}}, threshold: 1,
                    comparisonOperator: Above, stepAdjustments: []}
                - {policyName: two, policyType: StepScaling,
                   targetTrackingConfiguration: {metric: {cpu: {}}, targetValue: 50}}
                - just a string
              scheduledActions:
                - {scheduledActionName: n, schedule: "cron(0 25 * * ? *)", maxCapacity: 1}
                - {scheduledActionName: m, schedule: "cron(0 2 * * ? *)"}
                - {schedule: "rate(1 hour)", minCapacity: 1}
          daemon:
            taskDefinition: worker
            schedulingStrategy: DAEMON
            scaling: {minCapacity: 1, maxCapacity: 2}
          loose: {taskDefinition: worker, scaling: [1, 2]}
        """
    )
    assert errors == [
        "hatoba.yaml:5: services.worker.scaling.minCapacity: is above maxCapacity 2",
        "hatoba.yaml:7: services.worker.scaling.polices: unknown field; did you mean 'policies'?",
        "hatoba.yaml:11: services.worker.scaling.policies[0].targetTrackingConfiguration"
        ".targetValue: field required",
        "hatoba.yaml:13: services.worker.scaling.policies[0].targetTrackingConfiguration"
        ".targetValu: unknown field; did you mean 'targetValue'?",
        "hatoba.yaml:14: services.worker.scaling.policies[1].policyName: 'backlog' is also "
        "item 0 of the list",
        "hatoba.yaml:17: services.worker.scaling.policies[1].stepScalingConfiguration"
        ".comparisonOperator: must be 'GreaterThanOrEqualToThreshold', 'GreaterThanThreshold', "
        "'LessThanThreshold' or 'LessThanOrEqualToThreshold'",
        "hatoba.yaml:17: services.worker.scaling.policies[1].stepScalingConfiguration"
        ".stepAdjustments: List should have at least 1 item after validation, not 0",
        "hatoba.yaml:18: services.worker.scaling.policies[2].stepScalingConfiguration: "
        "required with policyType StepScaling",
        "hatoba.yaml:19: services.worker.scaling.policies[2].targetTrackingConfiguration: "
        "not allowed with policyType StepScaling",
        "hatoba.yaml:20: services.worker.scaling.policies[3]: must be a mapping (policyName, ...)",
        "hatoba.yaml:22: services.worker.scaling.scheduledActions[0].schedule: cron hours '25': "
        "25 is out of range 0-23",
        "hatoba.yaml:23: services.worker.scaling.scheduledActions[1].minCapacity: set "
        "minCapacity, maxCapacity or both",
        "hatoba.yaml:24: services.worker.scaling.scheduledActions[2].scheduledActionName: "
        "field required",
        "hatoba.yaml:28: services.daemon.scaling: a DAEMON service runs one task per node; "
        "it cannot scale",
        "hatoba.yaml:29: services.loose.scaling: must be a mapping (minCapacity, maxCapacity, "
        "policies, ...)",
    ]
