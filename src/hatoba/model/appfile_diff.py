"""What applying an app file would change: the file against a snapshot of the control plane.

Pure: ``plan(app, state)`` returns every parameter, task definition, service and job of the
file in apply order, each ``create``, ``update`` or ``unchanged``, with the differing fields as
``(path, old, new)``. Whatever differs is a change, whoever made it: a service scaled by hand
shows up as an update back to the file's count.

Task definitions are compared in a normal form (every default spelled out, empty lists and
nulls dropped) of the file's definition and of the export of the family's latest ACTIVE
revision, so ``essential: true`` written out or left to its default is the same definition,
and only a real difference registers a new revision. SecureString values are compared
decrypted but never shown: a change reads ``(secret changed)``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from hatoba.model.appfile import AppFile, Loc, TaskDefRef, format_path, split_path
from hatoba.model.appfile_scaling import ScalingDecl, action_body, policy_body, target_body
from hatoba.model.ecs_import import ASSIGNED_NAMES, export_task_definition, parse_task_definition
from hatoba.model.errors import FieldError, ValidationFailed
from hatoba.model.job import Job, JobSpec
from hatoba.model.params import ParameterType, ParameterView
from hatoba.model.scaling_view import ScalingDescription
from hatoba.model.service import SchedulingStrategy, Service, ServiceSpec, ServiceStatus
from hatoba.model.taskdef import TaskDefinition

SECRET = "(secret)"
SECRET_CHANGED = "(secret changed)"
SECRET_UNREADABLE = "(secret; cannot compare without canDecrypt)"
NEW_REVISION = "(new revision)"

# Service fields the file sets and UpdateService can change, by wire name.
SERVICE_FIELDS = (
    "taskDefinition",
    "desiredCount",
    "deploymentConfiguration",
    "placementConstraints",
    "placementStrategy",
    "healthCheckGracePeriodSeconds",
)


class Kind(StrEnum):
    PARAMETER = "parameter"
    TASK_DEFINITION = "taskDefinition"
    SERVICE = "service"
    SCALING = "scaling"  # a service's autoscaling (its name is the service's)
    JOB = "job"


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class FieldChange:
    """One differing field, with values fit to print (secrets already replaced)."""

    path: str
    old: Any
    new: Any

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "old": self.old, "new": self.new}


@dataclass(frozen=True)
class Change:
    kind: Kind
    name: str
    action: Action
    fields: tuple[FieldChange, ...] = ()
    # services: the top-level wire fields an UpdateService must send
    changed: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "name": self.name,
            "action": self.action.value,
            "changes": [f.to_json() for f in self.fields],
        }


@dataclass(frozen=True)
class ServerState:
    """What the control plane has of what the file names.

    ``task_definitions``: family -> export (``include_assigned``) of its latest ACTIVE
    revision, for families the file declares or names bare. ``revisions``: the explicit
    ``family:revision`` references of the file that exist and are ACTIVE. ``parameters``:
    the latest version of each, SecureStrings decrypted when the caller may.
    """

    parameters: Mapping[str, ParameterView] = field(default_factory=dict)
    task_definitions: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    services: Mapping[str, Service] = field(default_factory=dict)
    revisions: frozenset[str] = frozenset()
    jobs: Mapping[str, Job] = field(default_factory=dict)  # every job on the server
    # the file's services that have a scalable target on the server
    scaling: Mapping[str, ScalingDescription] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change, ...]
    # family -> "family:revision" on the server now, for every family the file relies on
    current: Mapping[str, str] = field(default_factory=dict)

    @property
    def has_changes(self) -> bool:
        return any(c.action != Action.UNCHANGED for c in self.changes)

    @property
    def deploys(self) -> bool:
        """Whether a task definition or a service changes (beforeDeploy tasks run then)."""
        deploying = (Kind.TASK_DEFINITION, Kind.SERVICE)
        return any(c.action != Action.UNCHANGED and c.kind in deploying for c in self.changes)

    def of(self, kind: Kind) -> list[Change]:
        return [c for c in self.changes if c.kind == kind]

    def changing(self, kind: Kind, name: str) -> bool:
        return any(
            c.kind == kind and c.name == name and c.action != Action.UNCHANGED for c in self.changes
        )

    def resolve(self, ref: TaskDefRef, registered: Mapping[str, str] | None = None) -> str:
        """The ``family:revision`` a reference means once the task definitions are applied
        (``registered``: family -> revision apply has just registered)."""
        if ref.revision is not None:
            return str(ref)
        if registered and ref.family in registered:
            return registered[ref.family]
        return self.current[ref.family]

    def to_json(self) -> list[dict[str, Any]]:
        return [c.to_json() for c in self.changes]


def plan(app: AppFile, state: ServerState) -> Plan:
    """Every change applying ``app`` makes, in apply order; ``ValidationFailed`` (with the
    file's lines) when the file names something the server does not have, or asks for a
    change no update can make."""
    errors: list[FieldError] = []
    current: dict[str, str] = {}
    for family, export in state.task_definitions.items():
        arn = _arn(export)
        if arn is not None:
            current[family] = arn
    changes = [_parameter(app, state, name) for name in app.parameters]
    td_changes = [_task_definition(app, state, family) for family in app.task_definitions]
    changes += td_changes
    changed_families = {c.name for c in td_changes if c.action != Action.UNCHANGED}
    for name, svc in app.services.items():
        errors += _ref_errors(app, state, svc.task_definition, ("services", name, "taskDefinition"))
    for task in app.before_deploy:
        at: Loc = ("beforeDeploy", task.index, "taskDefinition")
        errors += _ref_errors(app, state, task.task_definition, at)
    for name, job in app.jobs.items():
        errors += _ref_errors(app, state, job.task_definition, ("jobs", name, "taskDefinition"))
        errors += _chain_errors(app, state, name)
    if errors:
        raise ValidationFailed(errors, app.filename)
    for name in app.services:
        changes.append(_service(app, state, name, current, changed_families, errors))
    if errors:
        raise ValidationFailed(errors, app.filename)
    for name in app.services:
        scaling = _scaling(app, state, name)
        if scaling is not None:
            changes.append(scaling)
    changes += [_job(app, state, name) for name in app.jobs]
    return Plan(tuple(changes), current)


# -- parameters -------------------------------------------------------------------------------


def _parameter(app: AppFile, state: ServerState, name: str) -> Change:
    decl = app.parameters[name]
    secure = decl.type is ParameterType.SECURE_STRING
    have = state.parameters.get(name)
    if have is None:
        fields = [FieldChange("type", None, decl.type.value)]
        fields.append(FieldChange("value", None, SECRET if secure else decl.value))
        if decl.description is not None:
            fields.append(FieldChange("description", None, decl.description))
        return Change(Kind.PARAMETER, name, Action.CREATE, tuple(fields))
    fields = []
    if have.type != decl.type:
        fields.append(FieldChange("type", have.type.value, decl.type.value))
    was_secure = have.type is ParameterType.SECURE_STRING
    if have.redacted:
        fields.append(FieldChange("value", SECRET, SECRET_UNREADABLE))
    elif have.value != decl.value:
        if secure or was_secure:
            old = SECRET if was_secure else have.value
            fields.append(FieldChange("value", old, SECRET_CHANGED if secure else decl.value))
        else:
            fields.append(FieldChange("value", have.value, decl.value))
    if decl.description is not None and decl.description != have.description:
        fields.append(FieldChange("description", have.description, decl.description))
    action = Action.UPDATE if fields else Action.UNCHANGED
    return Change(Kind.PARAMETER, name, action, tuple(fields))


# -- task definitions -------------------------------------------------------------------------


def normal_form(td: TaskDefinition) -> dict[str, Any]:
    """The definition with every default spelled out and nothing the server assigns, empty
    lists, empty mappings and nulls dropped: equal forms run the same tasks."""
    full = td.model_dump(mode="json", by_alias=True, exclude=set(ASSIGNED_NAMES))
    spelled = export_task_definition(TaskDefinition.model_validate(full))
    pruned = _prune(spelled)
    return pruned if isinstance(pruned, dict) else {}


def server_normal_form(export: Mapping[str, Any]) -> dict[str, Any]:
    """The normal form of an export (``include_assigned`` or not)."""
    return normal_form(parse_task_definition(export).task_definition)


def _task_definition(app: AppFile, state: ServerState, family: str) -> Change:
    decl = app.task_definitions[family]
    export = state.task_definitions.get(family)
    if export is None:
        compact = _prune(export_task_definition(decl.task_definition))
        fields = [FieldChange(p, None, v) for p, v in _leaves(compact, ()) if p != "family"]
        return Change(Kind.TASK_DEFINITION, family, Action.CREATE, tuple(fields))
    mine = normal_form(decl.task_definition)
    theirs = server_normal_form(export)
    fields = _compare(theirs, mine, ())
    action = Action.UPDATE if fields else Action.UNCHANGED
    return Change(Kind.TASK_DEFINITION, family, action, tuple(fields))


def _arn(export: Mapping[str, Any]) -> str | None:
    arn = export.get("taskDefinitionArn")
    if isinstance(arn, str) and arn:
        return arn
    revision = export.get("revision")
    family = export.get("family")
    return f"{family}:{revision}" if family and revision else None


def _ref_errors(app: AppFile, state: ServerState, ref: TaskDefRef, at: Loc) -> list[FieldError]:
    if ref.revision is not None:
        if str(ref) in state.revisions:
            return []
        return [app.error(at, f"task definition {ref} not found or not ACTIVE on the server")]
    if ref.declared or ref.family in state.task_definitions:
        return []
    return [
        app.error(
            at,
            f"no ACTIVE revision of task definition family {ref.family!r} on the server, "
            "and the file does not declare it under taskDefinitions",
        )
    ]


# -- services ---------------------------------------------------------------------------------


def service_form(
    spec: ServiceSpec | Service, task_definition: str, strategy: SchedulingStrategy
) -> dict[str, Any]:
    """What the file controls of a service, defaults resolved (the deployment limits too)."""
    low, high = spec.deployment_configuration.limits(strategy)
    breaker = spec.deployment_configuration.deployment_circuit_breaker
    form: dict[str, Any] = {
        "taskDefinition": task_definition,
        "desiredCount": spec.desired_count,
        "deploymentConfiguration": {
            "deploymentCircuitBreaker": {"enable": breaker.enable, "rollback": breaker.rollback},
            "maximumPercent": high,
            "minimumHealthyPercent": low,
        },
        "placementConstraints": spec.placement_constraints,
        "placementStrategy": spec.placement_strategy,
        "healthCheckGracePeriodSeconds": spec.health_check_grace_period_seconds,
    }
    if strategy == SchedulingStrategy.DAEMON:
        del form["desiredCount"]  # one per node: the server counts, the file cannot set it
    return form


def _service(
    app: AppFile,
    state: ServerState,
    name: str,
    current: Mapping[str, str],
    changed_families: set[str],
    errors: list[FieldError],
) -> Change:
    decl = app.services[name]
    ref = decl.task_definition
    if ref.declared and ref.family in changed_families:
        target = f"{ref.family}:{NEW_REVISION}"
    elif ref.revision is not None:
        target = str(ref)
    else:
        target = current[ref.family]
    spec = decl.spec
    have = state.services.get(name)
    if have is None or have.status != ServiceStatus.ACTIVE:
        shown = {"taskDefinition", "desiredCount"} | {
            type(spec).model_fields[n].alias or n for n in spec.model_fields_set
        }
        mine = service_form(spec, target, spec.scheduling_strategy)
        mine = {k: v for k, v in mine.items() if k in shown}  # what the file says
        fields = [FieldChange(p, None, v) for p, v in _leaves(_prune(mine), ())]
        if spec.scheduling_strategy != SchedulingStrategy.REPLICA:
            strategy = spec.scheduling_strategy.value
            fields.insert(0, FieldChange("schedulingStrategy", None, strategy))
        return Change(Kind.SERVICE, name, Action.CREATE, tuple(fields))
    if have.scheduling_strategy != spec.scheduling_strategy:
        errors.append(
            app.error(
                ("services", name, "schedulingStrategy"),
                f"is {have.scheduling_strategy.value} on the server; an update cannot change "
                "it (delete the service, then apply)",
            )
        )
    strategy = have.scheduling_strategy
    theirs = service_form(have, have.task_definition, strategy)
    mine = service_form(spec, target, strategy)
    if decl.scaling is not None:  # the autoscaler owns the count
        theirs.pop("desiredCount", None)
        mine.pop("desiredCount", None)
    fields = _compare(theirs, mine, ())
    changed = tuple(dict.fromkeys(f.path.split(".")[0].split("[")[0] for f in fields))
    action = Action.UPDATE if fields else Action.UNCHANGED
    return Change(Kind.SERVICE, name, action, tuple(fields), changed)


# -- autoscaling ------------------------------------------------------------------------------


def scaling_form(
    target: Mapping[str, Any],
    policies: Mapping[str, dict[str, Any]],
    actions: Mapping[str, dict[str, Any]],
    *,
    bounds: bool = True,
) -> dict[str, Any]:
    """A service's autoscaling as compared: the target (without min/max when scheduled
    actions own them), and policies and scheduled actions by name."""
    form = {k: v for k, v in target.items() if bounds or k not in ("minCapacity", "maxCapacity")}
    form["policies"] = {
        n: {k: v for k, v in b.items() if k != "policyName"} for n, b in policies.items()
    }
    form["scheduledActions"] = {
        n: {k: v for k, v in b.items() if k != "scheduledActionName"} for n, b in actions.items()
    }
    pruned = _prune(form)
    return pruned if isinstance(pruned, dict) else {}


def _scaling(app: AppFile, state: ServerState, name: str) -> Change | None:
    """The service's autoscaling: created, changed (``changed`` lists the calls: ``target``,
    ``policy:NAME``, ``-policy:NAME``, ``action:NAME``, ``-action:NAME``, ``deregister``),
    or removed when the file has no ``scaling:`` for a service the server scales."""
    decl: ScalingDecl | None = app.services[name].scaling
    have = state.scaling.get(name)
    if decl is None:
        if have is None:
            return None
        t = have.scalable_target
        gone = [FieldChange("minCapacity", t.min_capacity, None)]
        gone.append(FieldChange("maxCapacity", t.max_capacity, None))
        gone += [
            FieldChange(format_path(("policies", p.policy_name)), p.policy_type.value, None)
            for p in have.policies
        ]
        gone += [
            FieldChange(
                format_path(("scheduledActions", a.scheduled_action_name)), a.schedule, None
            )
            for a in have.scheduled_actions
        ]
        return Change(Kind.SCALING, name, Action.UPDATE, tuple(gone), ("deregister",))
    mine_p = {n: policy_body(p) for n, p in decl.policies.items()}
    mine_a = {n: action_body(a) for n, a in decl.scheduled_actions.items()}
    if have is None:
        mine = scaling_form(decl.target, mine_p, mine_a)
        fields = [FieldChange(p, None, v) for p, v in _leaves(mine, ())]
        ops = ["target", *(f"policy:{n}" for n in mine_p), *(f"action:{n}" for n in mine_a)]
        return Change(Kind.SCALING, name, Action.CREATE, tuple(fields), tuple(ops))
    bounds = not decl.scheduled_actions
    theirs_t = target_body(have.scalable_target)
    theirs_p = {p.policy_name: policy_body(p) for p in have.policies}
    theirs_a = {a.scheduled_action_name: action_body(a) for a in have.scheduled_actions}
    fields = _compare(
        scaling_form(theirs_t, theirs_p, theirs_a, bounds=bounds),
        scaling_form(decl.target, mine_p, mine_a, bounds=bounds),
        (),
    )
    ops = []
    if _compare(
        scaling_form(theirs_t, {}, {}, bounds=bounds),
        scaling_form(decl.target, {}, {}, bounds=bounds),
        (),
    ):
        ops.append("target")
    ops += [f"-policy:{n}" for n in theirs_p if n not in mine_p]
    ops += [f"policy:{n}" for n, b in mine_p.items() if not _same(theirs_p.get(n), b)]
    ops += [f"-action:{n}" for n in theirs_a if n not in mine_a]
    ops += [f"action:{n}" for n, b in mine_a.items() if not _same(theirs_a.get(n), b)]
    action = Action.UPDATE if ops else Action.UNCHANGED
    return Change(Kind.SCALING, name, action, tuple(fields), tuple(ops))


# -- jobs -------------------------------------------------------------------------------------


def job_form(spec: JobSpec) -> dict[str, Any]:
    """What the file controls of a job: every field but its name, defaults spelled out
    (the task definition as written: the server resolves it at each launch)."""
    form = spec.model_dump(mode="json", by_alias=True, exclude={"job_name"})
    pruned = _prune(form)
    return pruned if isinstance(pruned, dict) else {}


def _chain_errors(app: AppFile, state: ServerState, name: str) -> list[FieldError]:
    return [
        app.error(
            ("jobs", name, *split_path(path)),
            f"job {target} is neither in the file nor on the server",
        )
        for path, target in app.jobs[name].spec.chain.edges()
        if target not in app.jobs and target not in state.jobs
    ]


def _job(app: AppFile, state: ServerState, name: str) -> Change:
    spec = app.jobs[name].spec
    have = state.jobs.get(name)
    if have is None:
        said = {type(spec).model_fields[n].alias or n for n in spec.model_fields_set}
        mine = {k: v for k, v in job_form(spec).items() if k in said | {"taskDefinition"}}
        fields = [FieldChange(p, None, v) for p, v in _leaves(mine, ())]
        return Change(Kind.JOB, name, Action.CREATE, tuple(fields))
    fields = _compare(job_form(have.spec()), job_form(spec), ())
    action = Action.UPDATE if fields else Action.UNCHANGED
    return Change(Kind.JOB, name, action, tuple(fields))


# -- comparing nested JSON --------------------------------------------------------------------


def _prune(value: Any) -> Any:
    """Drop nulls, empty lists and empty mappings, at every depth (not list items)."""
    if isinstance(value, dict):
        out = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, [], {})}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


def _leaves(value: Any, at: Loc) -> list[tuple[str, Any]]:
    if isinstance(value, dict) and value:
        return [leaf for k, v in value.items() for leaf in _leaves(v, (*at, k))]
    if isinstance(value, list) and value and not _scalars(value):
        return [leaf for i, v in enumerate(value) for leaf in _leaves(v, (*at, i))]
    return [(format_path(at), value)]


def _scalars(value: list[Any]) -> bool:
    """A list of plain values (a command, say) reads best whole: one leaf."""
    return all(not isinstance(v, dict | list) for v in value)


def _compare(old: Any, new: Any, at: Loc) -> list[FieldChange]:
    """The differing leaves of two JSON values (a list compared item by item)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[FieldChange] = []
        for key in list(dict.fromkeys([*old, *new])):
            if key not in new:
                out += [FieldChange(p, v, None) for p, v in _leaves(old[key], (*at, key))]
            elif key not in old:
                out += [FieldChange(p, None, v) for p, v in _leaves(new[key], (*at, key))]
            else:
                out += _compare(old[key], new[key], (*at, key))
        return out
    lists = isinstance(old, list) and isinstance(new, list)
    if lists and old and new and not (_scalars(old) and _scalars(new)):
        out = []
        for i in range(max(len(old), len(new))):
            if i >= len(new):
                out += [FieldChange(p, v, None) for p, v in _leaves(old[i], (*at, i))]
            elif i >= len(old):
                out += [FieldChange(p, None, v) for p, v in _leaves(new[i], (*at, i))]
            else:
                out += _compare(old[i], new[i], (*at, i))
        return out
    if _same(old, new):
        return []
    return [FieldChange(format_path(at), old, new)]


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
