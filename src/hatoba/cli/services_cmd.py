"""``hatoba service ...``: create, update, scale, describe, list, delete services; their
events and tasks.

``--wait`` turns a change into a command that finishes when the service does: create and
update wait for the steady state (the PRIMARY deployment COMPLETED with all its tasks
running, no other deployment left), exiting 3 when the deployment FAILED (circuit breaker)
and 124 at ``--timeout``; scale waits for exactly N live tasks, all RUNNING (for 0: every
task STOPPED); delete waits until the service is gone.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel, ValidationError

from hatoba.cli import output
from hatoba.cli.connection import session
from hatoba.cli.events_out import print_events
from hatoba.cli.exitcodes import USAGE
from hatoba.cli.output import OutputFormat, OutputOption
from hatoba.cli.parsing import parse_duration, placement_options
from hatoba.cli.render import task_table
from hatoba.cli.services_render import service_panel, service_table
from hatoba.cli.services_wait import (
    EventTail,
    deadline_of,
    latest_event_id,
    wait_deployment,
    wait_gone,
    wait_scaled,
)
from hatoba.cli.spec_files import load_mapping
from hatoba.client import ApiError
from hatoba.model.errors import FieldError
from hatoba.model.service import Service, ServiceSpec, ServiceUpdate

app = typer.Typer(help="Keep N copies of a task definition running and roll them to new revisions.")

FOLLOW_SECONDS = 1.0
M = TypeVar("M", bound=BaseModel)

# CreateService fields that mean nothing here: dropped with a warning.
ECS_IGNORED = frozenset(
    {
        "cluster", "loadBalancers", "serviceRegistries", "clientToken", "launchType",
        "capacityProviderStrategy", "platformVersion", "role", "networkConfiguration",
        "deploymentController", "tags", "enableECSManagedTags", "propagateTags",
        "enableExecuteCommand", "serviceConnectConfiguration", "volumeConfigurations",
        "availabilityZoneRebalancing", "vpcLatticeConfigurations",
    }
)  # fmt: skip
ECS_DEPLOYMENT_IGNORED = frozenset({"alarms", "strategy", "bakeTimeInMinutes", "lifecycleHooks"})
# which option sets which field, for hints after a validation error
OPTION_FOR = {
    "serviceName": "NAME",
    "taskDefinition": "--task-definition",
    "desiredCount": "--desired-count",
    "deploymentConfiguration.maximumPercent": "--max-percent",
    "deploymentConfiguration.minimumHealthyPercent": "--min-healthy-percent",
    "deploymentConfiguration.deploymentCircuitBreaker": "--circuit-breaker/--rollback",
    "healthCheckGracePeriodSeconds": "--grace-period",
    "placementConstraints": "--constraint/--distinct-instance",
    "placementStrategy": "--strategy",
}

NameArg = Annotated[str, typer.Argument(metavar="NAME", help="Service name.")]
TaskDefOpt = Annotated[
    str | None,
    typer.Option("--task-definition", "-t", metavar="FAMILY[:REV]", help="Task definition."),
]
CountOpt = Annotated[
    int | None, typer.Option("--desired-count", "-n", min=0, help="How many tasks to keep.")
]
MinHealthyOpt = Annotated[
    int | None,
    typer.Option(
        "--min-healthy-percent", metavar="P", min=0, max=100,
        help="Tasks kept running during a deployment, % of desired (default 100).",
    ),
]  # fmt: skip
MaxPercentOpt = Annotated[
    int | None,
    typer.Option(
        "--max-percent", metavar="P", min=100, max=1000,
        help="Tasks allowed during a deployment, % of desired (default 200).",
    ),
]  # fmt: skip
BreakerOpt = Annotated[
    bool | None,
    typer.Option(
        "--circuit-breaker/--no-circuit-breaker",
        help="Fail a deployment whose tasks keep failing to start.",
        show_default=False,
    ),
]
RollbackOpt = Annotated[
    bool | None,
    typer.Option(
        "--rollback/--no-rollback",
        help="On a failed deployment, roll back to the last completed one "
        "(implies --circuit-breaker).",
        show_default=False,
    ),
]
GraceOpt = Annotated[
    str | None,
    typer.Option(
        "--grace-period", metavar="DURATION",
        help="Ignore failing health checks this long after a task starts (e.g. 30s).",
    ),
]  # fmt: skip
ConstraintOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--constraint", metavar="EXPR",
        help="memberOf constraint, e.g. 'attribute:rack == r1' (repeatable).",
    ),
]  # fmt: skip
DistinctOpt = Annotated[
    bool,
    typer.Option("--distinct-instance", help="At most one of the service's tasks per node."),
]
StrategyOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--strategy", metavar="TYPE[:FIELD]",
        help="binpack:memory|binpack:cpu|spread:nodeId|spread:attribute:NAME|random "
        "(repeatable, in order).",
    ),
]  # fmt: skip
FromFileOpt = Annotated[
    str | None,
    typer.Option(
        "--from-file", metavar="FILE",
        help="ECS CreateService input, JSON or YAML (- for stdin); options override it.",
    ),
]  # fmt: skip
WaitOpt = Annotated[bool, typer.Option("--wait", help="Return once the service is steady.")]
TimeoutOpt = Annotated[
    str, typer.Option("--timeout", metavar="DURATION", help="Give up --wait after this long.")
]


# -- input ----------------------------------------------------------------------------------
def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out


def _validated(cls: type[M], data: dict[str, Any], subject: str) -> M:
    """The model, or exit 1 naming each bad field (JSON path) before anything is sent."""
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        fields = [FieldError(_path(tuple(e["loc"])), e["msg"]) for e in exc.errors()]
        _hint(fields)
        raise output.fail(f"invalid {subject}", fields=fields) from None


def _hint(fields: list[FieldError]) -> None:
    for f in fields:
        for prefix, option in OPTION_FOR.items():
            if f.path.startswith(prefix) and option != "NAME":
                output.info(f"hint: {option} sets {f.path}")
                break


@contextmanager
def _explained() -> Iterator[None]:
    """A 422 from the server: its fields, plus which option sets each."""
    try:
        yield
    except ApiError as exc:
        if exc.status != 422:
            raise
        output.error(exc.message, exc.errors)
        _hint(exc.errors)
        raise typer.Exit(1) from None


def _load_file(path: str) -> dict[str, Any]:
    """ECS CreateService input (JSON or YAML); fields that do not apply are dropped with a
    warning, anything else unknown is left for validation to name."""
    data = load_mapping(path, "a service must be a JSON object (ECS CreateService input)")
    for key in sorted(ECS_IGNORED & set(data)):
        output.warning(f"{key}: does not apply to hatoba; ignored")
        del data[key]
    config = data.get("deploymentConfiguration")
    if isinstance(config, dict):
        for key in sorted(ECS_DEPLOYMENT_IGNORED & set(config)):
            output.warning(f"deploymentConfiguration.{key}: does not apply to hatoba; ignored")
            del config[key]
    return data


def _deployment_config(
    base: dict[str, Any] | None,
    min_healthy: int | None,
    max_percent: int | None,
    breaker: bool | None,
    rollback: bool | None,
) -> dict[str, Any] | None:
    """``base`` (wire form) with the options laid over it; None when no option is given."""
    if min_healthy is None and max_percent is None and breaker is None and rollback is None:
        return None
    if rollback and breaker is False:
        raise output.fail("--rollback needs the circuit breaker; drop --no-circuit-breaker", USAGE)
    out = dict(base or {})
    if min_healthy is not None:
        out["minimumHealthyPercent"] = min_healthy
    if max_percent is not None:
        out["maximumPercent"] = max_percent
    cb = dict(out.get("deploymentCircuitBreaker") or {})
    if rollback is not None:
        cb["rollback"] = rollback
        if rollback:
            cb["enable"] = True
    if breaker is not None:
        cb["enable"] = breaker
        if not breaker:
            cb["rollback"] = False
    if cb:
        out["deploymentCircuitBreaker"] = cb
    return out


def _grace_seconds(grace: str | None) -> int | None:
    if grace is None:
        return None
    if grace.strip() in ("0", "0s"):
        return 0
    return round(parse_duration(grace, "--grace-period"))


def _show(service: Service, output_: OutputFormat | None, verb: str) -> None:
    if output.output_format(output_) == OutputFormat.JSON:
        output.print_json(service)
    else:
        output.stdout().print(
            f"{verb} service {service.service_name} ({service.task_definition}, desired "
            f"{service.desired_count})",
            markup=False,
            highlight=False,
        )


# -- commands -------------------------------------------------------------------------------
@app.command()
def create(
    name: Annotated[
        str | None,
        typer.Argument(metavar="NAME", help="Service name (or serviceName in --from-file)."),
    ] = None,
    task_definition: TaskDefOpt = None,
    desired_count: CountOpt = None,
    daemon: Annotated[
        bool, typer.Option("--daemon", help="One task on every node (DAEMON).")
    ] = False,
    min_healthy_percent: MinHealthyOpt = None,
    max_percent: MaxPercentOpt = None,
    circuit_breaker: BreakerOpt = None,
    rollback: RollbackOpt = None,
    grace_period: GraceOpt = None,
    constraint: ConstraintOpt = None,
    distinct_instance: DistinctOpt = False,
    strategy: StrategyOpt = None,
    from_file: FromFileOpt = None,
    wait: WaitOpt = False,
    timeout: TimeoutOpt = "600",
    output_: OutputOption = None,
) -> None:
    """Create a service: keep --desired-count tasks of a task definition running.

    With --wait, return once its tasks run (exit 3 if the deployment fails, 124 at
    --timeout)."""
    data = _load_file(from_file) if from_file is not None else {}
    if name is not None:
        data["serviceName"] = name
    if task_definition is not None:
        data["taskDefinition"] = task_definition
    if daemon:
        if desired_count is not None:
            raise output.fail("--desired-count: a DAEMON service runs one task per node", USAGE)
        data["schedulingStrategy"] = "DAEMON"
    elif desired_count is not None:
        data["desiredCount"] = desired_count
    base = data.get("deploymentConfiguration")
    config = _deployment_config(
        base if isinstance(base, dict) else None,
        min_healthy_percent,
        max_percent,
        circuit_breaker,
        rollback,
    )
    if config is not None:
        data["deploymentConfiguration"] = config
    _placement(data, constraint, distinct_instance, strategy)
    grace = _grace_seconds(grace_period)
    if grace is not None:
        data["healthCheckGracePeriodSeconds"] = grace
    if "serviceName" not in data:
        raise output.fail("missing NAME (or serviceName in --from-file)", USAGE)
    if "taskDefinition" not in data:
        raise output.fail("missing --task-definition (or taskDefinition in --from-file)", USAGE)
    spec = _validated(ServiceSpec, data, "service")
    deadline_of(timeout)  # a bad --timeout fails before anything changes
    with session() as client:
        with _explained():
            service = client.create_service(spec)
        primary = service.primary
        if wait and primary is not None:
            service = wait_deployment(
                client, service.service_name, primary.id, after_id=None, timeout=timeout
            )
    _show(service, output_, "Created")


def _placement(
    data: dict[str, Any],
    constraints: list[str] | None,
    distinct_instance: bool,
    strategies: list[str] | None,
) -> None:
    given_c, given_s = placement_options(constraints or [], distinct_instance, strategies or [])
    if constraints or distinct_instance:
        data["placementConstraints"] = given_c
    if strategies:
        data["placementStrategy"] = given_s


@app.command()
def update(
    name: NameArg,
    task_definition: TaskDefOpt = None,
    desired_count: CountOpt = None,
    force_new_deployment: Annotated[
        bool,
        typer.Option("--force-new-deployment", help="Replace every task, same definition."),
    ] = False,
    min_healthy_percent: MinHealthyOpt = None,
    max_percent: MaxPercentOpt = None,
    circuit_breaker: BreakerOpt = None,
    rollback: RollbackOpt = None,
    grace_period: GraceOpt = None,
    constraint: ConstraintOpt = None,
    distinct_instance: DistinctOpt = False,
    strategy: StrategyOpt = None,
    wait: WaitOpt = False,
    timeout: TimeoutOpt = "600",
    output_: OutputOption = None,
) -> None:
    """Change a service: a new --task-definition (or --force-new-deployment) rolls its tasks
    over; the rest apply in place. Only what is given changes."""
    data: dict[str, Any] = {}
    if task_definition is not None:
        data["taskDefinition"] = task_definition
    if desired_count is not None:
        data["desiredCount"] = desired_count
    if force_new_deployment:
        data["forceNewDeployment"] = True
    _placement(data, constraint, distinct_instance, strategy)
    grace = _grace_seconds(grace_period)
    if grace is not None:
        data["healthCheckGracePeriodSeconds"] = grace
    deadline_of(timeout)
    with session() as client:
        if (min_healthy_percent, max_percent, circuit_breaker, rollback) != (None,) * 4:
            current = client.describe_service(name).deployment_configuration
            data["deploymentConfiguration"] = _deployment_config(
                current.model_dump(mode="json", by_alias=True, exclude_none=True),
                min_healthy_percent,
                max_percent,
                circuit_breaker,
                rollback,
            )
        if not data:
            raise output.fail(
                "nothing to change: give --task-definition, --desired-count, "
                "--force-new-deployment or a deployment/placement option",
                USAGE,
            )
        change = _validated(ServiceUpdate, data, "update")
        after_id = latest_event_id(client, name) if wait else None
        with _explained():
            service = client.update_service(name, change)
        primary = service.primary
        if wait and primary is not None:
            service = wait_deployment(client, name, primary.id, after_id=after_id, timeout=timeout)
    _show(service, output_, "Updated")


@app.command()
def scale(
    name: NameArg,
    count: Annotated[int, typer.Argument(metavar="N", min=0, help="Desired count.")],
    wait: Annotated[
        bool,
        typer.Option(
            "--wait", help="Return once exactly N tasks run (for 0: every task has stopped)."
        ),
    ] = False,
    timeout: TimeoutOpt = "600",
    output_: OutputOption = None,
) -> None:
    """Set a service's desired count (needs only the operator role)."""
    deadline_of(timeout)
    with session() as client:
        after_id = latest_event_id(client, name) if wait else None
        with _explained():
            service = client.scale_service(name, count)
        if wait:
            wait_scaled(client, name, count, after_id=after_id, timeout=timeout)
            service = client.describe_service(name)
    _show(service, output_, "Scaled")


@app.command()
def delete(
    name: NameArg,
    force: Annotated[
        bool, typer.Option("--force", help="Delete even with desired count above 0.")
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="Return once its tasks have stopped and it is gone.")
    ] = False,
    timeout: TimeoutOpt = "600",
    output_: OutputOption = None,
) -> None:
    """Delete a service: it turns DRAINING, its tasks are stopped, then it is gone."""
    deadline_of(timeout)
    with session() as client:
        service = client.delete_service(name, force=force)
        if wait:
            wait_gone(client, name, timeout=timeout)
    if output.output_format(output_) == OutputFormat.JSON:
        output.print_json(service)
    else:
        verb = "Deleted" if wait else "Deleting"
        output.stdout().print(f"{verb} service {name}", markup=False, highlight=False)


@app.command("list")
def list_(output_: OutputOption = None) -> None:
    """List services with their counts and rollout state."""
    with session() as client:
        services = client.list_services()
    if output.output_format(output_) == OutputFormat.JSON:
        output.print_json(services)
    else:
        output.stdout().print(service_table(services))


@app.command()
def describe(name: NameArg, output_: OutputOption = None) -> None:
    """Show a service: settings, deployments, latest events and tasks."""
    with session() as client:
        service = client.describe_service(name)
        if output.output_format(output_) == OutputFormat.JSON:
            output.print_json(service)
            return
        events = client.service_events(name, limit=10)
        tasks = client.service_tasks(name, live_only=True)
    output.stdout().print(service_panel(service, events, tasks))


@app.command()
def events(
    name: NameArg,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=100, help="How many.")] = 50,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events (Ctrl-C ends).")
    ] = False,
    output_: OutputOption = None,
) -> None:
    """Print a service's events, oldest first (JSON: one object a line with --follow)."""
    as_json = output.output_format(output_) == OutputFormat.JSON
    with session() as client:
        shown = client.service_events(name, limit=limit)[::-1]
        if as_json and not follow:
            output.print_json(shown)
            return
        print_events(shown, as_json)
        if not follow:
            return
        tail = EventTail(client, name, shown[-1].id if shown else None)
        while True:
            time.sleep(FOLLOW_SECONDS)
            try:
                print_events(tail.new(), as_json)
            except ApiError as exc:
                if exc.status == 404:  # deleted: nothing more will come
                    return
                raise


@app.command()
def tasks(
    name: NameArg,
    all_: Annotated[
        bool, typer.Option("--all", help="Include the stopped tasks still kept.")
    ] = False,
    output_: OutputOption = None,
) -> None:
    """List a service's tasks (not yet STOPPED, unless --all)."""
    with session() as client:
        found = client.service_tasks(name, live_only=not all_)
    if output.output_format(output_) == OutputFormat.JSON:
        output.print_json(found)
    else:
        output.stdout().print(task_table(found))
