"""CreateService, UpdateService, DeleteService, DescribeServices: the declared side of
services. Requests are validated whole and stored; the reconcile loop
(``service_loop``) does the work of converging tasks to them.
"""

from __future__ import annotations

import builtins
import secrets
from collections.abc import Sequence
from typing import Any

from hatoba.controllers.refs import parse_taskdef_ref
from hatoba.controllers.service_plan import counts
from hatoba.model.clock import Clock
from hatoba.model.errors import Conflict, FieldError, NotFound, ValidationFailed
from hatoba.model.service import (
    Deployment,
    DeploymentConfiguration,
    DeploymentStatus,
    RolloutState,
    SchedulingStrategy,
    Service,
    ServiceEvent,
    ServiceSpec,
    ServiceStatus,
    ServiceUpdate,
    maximum_tasks,
    minimum_healthy_tasks,
    service_group,
)
from hatoba.model.task import LastStatus, Task
from hatoba.model.taskdef import TaskDefinitionStatus
from hatoba.scheduler.constraints import parse_constraints
from hatoba.scheduler.strategies import parse_strategies
from hatoba.store.protocol import Store

CAS_ATTEMPTS = 20
LIVE = [s for s in LastStatus if s != LastStatus.STOPPED]


def new_deployment_id() -> str:
    return "hd-" + secrets.token_hex(6)


def progress_errors(
    strategy: SchedulingStrategy, desired: int, config: DeploymentConfiguration
) -> list[FieldError]:
    """A REPLICA deployment must be able to start a new task or stop an old one: with the
    maximum rounded down to no more than the minimum rounded up, it never could."""
    if strategy != SchedulingStrategy.REPLICA or desired == 0:
        return []
    low, high = config.limits(strategy)
    most, least = maximum_tasks(desired, high), minimum_healthy_tasks(desired, low)
    if most > least:
        return []
    return [
        FieldError(
            "deploymentConfiguration.maximumPercent",
            f"with desiredCount {desired}, maximumPercent {high} allows {most} tasks and "
            f"minimumHealthyPercent {low} keeps {least} healthy, so a deployment could never "
            "replace a task; raise maximumPercent or lower minimumHealthyPercent",
        )
    ]


def placement_errors(
    constraints: Sequence[dict[str, Any]],
    strategies: Sequence[dict[str, Any]],
    scheduling: SchedulingStrategy,
) -> list[FieldError]:
    errors: list[FieldError] = []
    for parse, specs, path in (
        (parse_constraints, constraints, "placementConstraints"),
        (parse_strategies, strategies, "placementStrategy"),
    ):
        try:
            parse(specs, path)
        except ValidationFailed as exc:
            errors.extend(exc.errors)
    if scheduling == SchedulingStrategy.DAEMON and strategies:
        errors.append(FieldError("placementStrategy", "a DAEMON service places one task per node"))
    return errors


class Services:
    def __init__(self, store: Store, clock: Clock, *, cluster: str = "default") -> None:
        self._store = store
        self._clock = clock
        self._cluster = cluster

    async def _resolve_taskdef(self, ref: str, errors: list[FieldError]) -> str | None:
        """``family[:revision]`` to the "family:revision" it means now, or an error."""
        try:
            family, revision = parse_taskdef_ref(ref)
        except ValidationFailed as exc:
            errors.extend(exc.errors)
            return None
        td = await self._store.get_task_definition(family, revision)
        if td is None:
            errors.append(FieldError("taskDefinition", f"task definition {ref} not found"))
            return None
        if td.status != TaskDefinitionStatus.ACTIVE:
            errors.append(
                FieldError("taskDefinition", f"{td.arn} is {td.status.value}; it cannot run")
            )
            return None
        return td.arn

    async def create(self, spec: ServiceSpec) -> Service:
        errors: list[FieldError] = []
        arn = await self._resolve_taskdef(spec.task_definition, errors)
        errors += placement_errors(
            spec.placement_constraints, spec.placement_strategy, spec.scheduling_strategy
        )
        errors += progress_errors(
            spec.scheduling_strategy, spec.desired_count, spec.deployment_configuration
        )
        if errors or arn is None:
            raise ValidationFailed(errors, subject="CreateService request")
        now = self._clock.now()
        daemon = spec.scheduling_strategy == SchedulingStrategy.DAEMON
        desired = 0 if daemon else spec.desired_count  # a DAEMON's count is its node count
        deployment = Deployment(
            id=new_deployment_id(),
            status=DeploymentStatus.PRIMARY,
            task_definition=arn,
            desired_count=desired,
            created_at=now,
            updated_at=now,
        )
        service = Service(
            service_name=spec.service_name,
            cluster=self._cluster,
            task_definition=arn,
            desired_count=desired,
            scheduling_strategy=spec.scheduling_strategy,
            deployment_configuration=spec.deployment_configuration,
            placement_constraints=spec.placement_constraints,
            placement_strategy=spec.placement_strategy,
            health_check_grace_period_seconds=spec.health_check_grace_period_seconds,
            deployments=[deployment],
            created_at=now,
            updated_at=now,
        )
        try:
            created = await self._store.create_service(service)
        except Conflict:
            raise Conflict(f"service {spec.service_name} already exists") from None
        await self._event(created, f"deployment {deployment.id} started: {arn}")
        return created

    async def update(self, name: str, update: ServiceUpdate) -> Service:
        errors: list[FieldError] = []
        arn = None
        if update.task_definition is not None:
            arn = await self._resolve_taskdef(update.task_definition, errors)
        for _ in range(CAS_ATTEMPTS):
            service = await self.get(name)
            if service.status != ServiceStatus.ACTIVE:
                raise Conflict(f"service {name} is {service.status.value}; it cannot change")
            changed, started = self._apply_update(service, update, arn, errors)
            if errors:
                raise ValidationFailed(errors, subject="UpdateService request")
            if not changed:
                return service
            try:
                stored = await self._store.update_service(service)
            except Conflict:
                continue
            if started is not None:
                await self._event(
                    stored, f"deployment {started.id} started: {started.task_definition}"
                )
            return stored
        raise Conflict(f"service {name} kept changing; try again")

    def _apply_update(
        self,
        service: Service,
        update: ServiceUpdate,
        arn: str | None,
        errors: list[FieldError],
    ) -> tuple[bool, Deployment | None]:
        """Apply ``update`` to ``service`` in place; (anything changed, new deployment)."""
        before = service.model_dump()
        daemon = service.scheduling_strategy == SchedulingStrategy.DAEMON
        if update.desired_count is not None:
            if daemon:
                errors.append(FieldError("desiredCount", "a DAEMON service runs one task per node"))
            else:
                service.desired_count = update.desired_count
        if update.deployment_configuration is not None:
            service.deployment_configuration = update.deployment_configuration
        if update.placement_constraints is not None:
            service.placement_constraints = update.placement_constraints
        if update.placement_strategy is not None:
            service.placement_strategy = update.placement_strategy
        if update.health_check_grace_period_seconds is not None:
            service.health_check_grace_period_seconds = update.health_check_grace_period_seconds
        errors += placement_errors(
            service.placement_constraints, service.placement_strategy, service.scheduling_strategy
        )
        errors += progress_errors(
            service.scheduling_strategy, service.desired_count, service.deployment_configuration
        )
        now = self._clock.now()
        started = None
        primary = service.primary
        if (arn is not None and arn != service.task_definition) or update.force_new_deployment:
            started = Deployment(
                id=new_deployment_id(),
                status=DeploymentStatus.PRIMARY,
                task_definition=arn or service.task_definition,
                desired_count=service.desired_count,
                created_at=now,
                updated_at=now,
            )
            for d in service.deployments:
                if d.status == DeploymentStatus.PRIMARY:
                    d.status = DeploymentStatus.ACTIVE
                    d.updated_at = now
                    if d.rollout_state == RolloutState.IN_PROGRESS:
                        d.rollout_state_reason = f"replaced by deployment {started.id}"
            service.deployments.append(started)
            service.task_definition = started.task_definition
            service.throttle.consecutive_failures = 0
            service.throttle.next_launch_at = None
        elif primary is not None and primary.desired_count != service.desired_count:
            primary.desired_count = service.desired_count
            primary.updated_at = now
        if service.model_dump() == before:
            return False, None
        service.updated_at = now
        return True, started

    async def scale(self, name: str, desired_count: int) -> Service:
        return await self.update(name, ServiceUpdate(desired_count=desired_count))

    async def delete(self, name: str, *, force: bool = False) -> Service:
        """ECS's rule: a REPLICA service must be scaled to 0 first, unless ``force``. The
        service turns DRAINING; the loop stops its tasks and then removes it."""
        for _ in range(CAS_ATTEMPTS):
            service = await self.get(name)
            if service.status == ServiceStatus.DRAINING:
                return service
            replica = service.scheduling_strategy == SchedulingStrategy.REPLICA
            if replica and service.desired_count > 0 and not force:
                raise Conflict(
                    f"service {name} has desiredCount {service.desired_count}: scale it to 0 "
                    "first, or delete with force"
                )
            service.status = ServiceStatus.DRAINING
            service.desired_count = 0
            service.updated_at = self._clock.now()
            try:
                stored = await self._store.update_service(service)
            except Conflict:
                continue
            await self._event(stored, "was deleted; stopping its tasks")
            return stored
        raise Conflict(f"service {name} kept changing; try again")

    async def get(self, name: str) -> Service:
        service = await self._store.get_service(name)
        if service is None:
            raise NotFound(f"service {name} not found")
        return service

    async def describe(self, name: str) -> Service:
        """The service with running/pending counts from its tasks."""
        service = await self.get(name)
        return counts(service, await self.tasks(name))

    async def list(self) -> builtins.list[Service]:
        out = []
        for service in await self._store.list_services():
            live = await self._store.list_tasks(group=service.group, last_statuses=LIVE)
            out.append(counts(service, live))
        return out

    async def tasks(self, name: str, *, live_only: bool = True) -> builtins.list[Task]:
        """The service's tasks not yet STOPPED (``live_only``), or with the stopped ones
        still kept."""
        await self.get(name)
        group = service_group(name)
        if live_only:
            return await self._store.list_tasks(group=group, last_statuses=LIVE)
        return await self._store.service_tasks(group, None)

    async def events(
        self, name: str, *, limit: int = 100, after_id: int | None = None
    ) -> builtins.list[ServiceEvent]:
        await self.get(name)
        return await self._store.list_service_events(name, limit=limit, after_id=after_id)

    async def _event(self, service: Service, message: str) -> None:
        await self._store.append_service_events(
            [
                ServiceEvent(
                    service_name=service.service_name,
                    created_at=self._clock.now(),
                    message=f"(service {service.service_name}) {message}",
                )
            ]
        )
