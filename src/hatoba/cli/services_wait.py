"""``hatoba service ... --wait``: polling a service until it is where the command asked,
with progress on stderr (a rich bar on a terminal, one line per change otherwise) and its
new events as they come.

Steady (create/update): the deployment started is the PRIMARY, its rolloutState COMPLETED,
all its tasks running, no other deployment left. FAILED exits ``DEPLOYMENT_FAILED`` (3) with
the reason and the latest events; ``--timeout`` exits ``TIMED_OUT`` (124).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.text import Text

from hatoba.cli import output
from hatoba.cli.exitcodes import DEPLOYMENT_FAILED, TIMED_OUT
from hatoba.cli.parsing import parse_duration
from hatoba.cli.render import when
from hatoba.client import ApiError, HatobaClient
from hatoba.model.service import (
    Deployment,
    DeploymentStatus,
    RolloutState,
    Service,
    ServiceEvent,
    ServiceStatus,
)
from hatoba.model.task import LastStatus, Task

POLL_SECONDS = 0.5
EVENTS_ON_FAILURE = 5


class Watch:
    """Progress on stderr: a rich bar on a terminal (with the latest event), else one line
    per change, so CI logs show what happened. New events are printed as they come."""

    def __init__(self, title: str) -> None:
        self._title = title
        self._last = ""
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        if sys.stderr.isatty():
            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(bar_width=20),
                MofNCompleteColumn(),
                TextColumn("{task.fields[state]}"),
                TextColumn("[dim]{task.fields[event]}", markup=True),
                console=output.stderr(),
            )

    def __enter__(self) -> Watch:
        if self._bar is not None:
            self._bar.start()
            self._task = self._bar.add_task(self._title, total=None, state="", event="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def event(self, event: ServiceEvent) -> None:
        line = f"{when(event.created_at)}  {event.message}"
        if self._bar is not None and self._task is not None:
            self._bar.console.print(Text(line, style="dim"))
            self._bar.update(self._task, event=_escape(event.message[-60:]))
        else:
            output.info(line)

    def update(self, done: int, total: int, state: str) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=done, total=max(total, 1), state=state)
            return
        line = f"{self._title}: {done}/{total} {state}"
        if line != self._last:
            output.info(line)
            self._last = line


def _escape(text: str) -> str:
    return text.replace("[", "\\[")


class EventTail:
    """New events of one service, oldest first (the API lists newest first)."""

    def __init__(self, client: HatobaClient, name: str, after_id: int | None) -> None:
        self.client, self.name, self.after_id = client, name, after_id

    def new(self) -> list[ServiceEvent]:
        events = self.client.service_events(self.name, after_id=self.after_id)
        if events:
            self.after_id = events[0].id
        return events[::-1]


def latest_event_id(client: HatobaClient, name: str) -> int | None:
    latest = client.service_events(name, limit=1)
    return latest[0].id if latest else None


def deadline_of(timeout: str) -> float:
    return time.monotonic() + parse_duration(timeout, "--timeout")


def _timed_out(timeout: str, what: str) -> typer.Exit:
    return output.fail(f"timed out after {timeout} waiting for {what}", code=TIMED_OUT)


def _find(service: Service, deployment_id: str) -> Deployment | None:
    return next((d for d in service.deployments if d.id == deployment_id), None)


def _steady(service: Service, deployment_id: str) -> bool:
    primary = service.primary
    if primary is None or primary.id != deployment_id:
        return False
    others = [
        d
        for d in service.deployments
        if d.id != primary.id and d.status != DeploymentStatus.INACTIVE
    ]
    return (
        primary.rollout_state == RolloutState.COMPLETED
        and not others
        and primary.running_count == primary.desired_count
        and primary.pending_count == 0
    )


def _failed(
    client: HatobaClient, service: Service, deployment_id: str, ours: Deployment | None
) -> typer.Exit:
    """Say why deployment ``deployment_id`` failed (a rolled-back one may already be gone
    from the list: its reason is then in the events) and return the exit to raise."""
    recent = client.service_events(service.service_name, limit=EVENTS_ON_FAILURE)
    reason = ours.rollout_state_reason if ours is not None else ""
    if not reason:
        said = [e.message for e in recent if f"deployment {deployment_id} failed" in e.message]
        reason = said[0].split(" failed: ", 1)[-1] if said else "no reason recorded"
    what = f" ({ours.task_definition})" if ours is not None else ""
    output.error(f"deployment {deployment_id}{what} FAILED: {reason}")
    back = next((d for d in service.deployments if d.rollback_of == deployment_id), None)
    if back is not None:
        output.info(f"rolling back to {back.task_definition} (deployment {back.id})")
    output.info("latest events:")
    for e in recent[::-1]:
        output.info(f"  {when(e.created_at)}  {e.message}")
    return typer.Exit(DEPLOYMENT_FAILED)


def wait_deployment(
    client: HatobaClient,
    name: str,
    deployment_id: str,
    *,
    after_id: int | None,
    timeout: str,
    sleep: Callable[[float], None] = time.sleep,
) -> Service:
    """Until deployment ``deployment_id`` is the PRIMARY, COMPLETED, with all its tasks
    running and no other deployment left; exits 3 when it FAILED (or was rolled back), 1
    when another deployment replaced it, 124 at the timeout."""
    deadline = deadline_of(timeout)
    tail = EventTail(client, name, after_id)
    with Watch(f"{name} {deployment_id}") as watch:
        while True:
            for event in tail.new():
                watch.event(event)
            service = client.describe_service(name)
            if service.status != ServiceStatus.ACTIVE:
                raise output.fail(f"service {name} is {service.status.value}; stopped waiting")
            ours = _find(service, deployment_id)
            rolled_back = any(d.rollback_of == deployment_id for d in service.deployments)
            if rolled_back or (ours is not None and ours.rollout_state == RolloutState.FAILED):
                raise _failed(client, service, deployment_id, ours)
            if ours is None or ours.status != DeploymentStatus.PRIMARY:
                primary = service.primary
                by = primary.id if primary else "another deployment"
                raise output.fail(f"deployment {deployment_id} was replaced by {by}")
            state = ours.rollout_state.value
            watch.update(ours.running_count, ours.desired_count, f"running  {state}")
            if _steady(service, deployment_id):
                return service
            if time.monotonic() >= deadline:
                raise _timed_out(timeout, f"deployment {deployment_id} to complete")
            sleep(POLL_SECONDS)


def wait_scaled(
    client: HatobaClient,
    name: str,
    count: int,
    *,
    after_id: int | None,
    timeout: str,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Task]:
    """Until exactly ``count`` live tasks, every one RUNNING (for 0: every task STOPPED)."""
    deadline = deadline_of(timeout)
    tail = EventTail(client, name, after_id)
    with Watch(f"{name} scaling to {count}") as watch:
        while True:
            for event in tail.new():
                watch.event(event)
            live = client.service_tasks(name, live_only=True)
            running = [t for t in live if t.last_status == LastStatus.RUNNING]
            if count == 0:
                watch.update(0, 0, f"{len(live)} task(s) not yet stopped")
            else:
                watch.update(len(running), count, f"running  {len(live)} live")
            if len(live) == count and len(running) == count:
                return live
            if time.monotonic() >= deadline:
                raise _timed_out(timeout, f"{count} running task(s) ({len(live)} live)")
            sleep(POLL_SECONDS)


def wait_gone(
    client: HatobaClient,
    name: str,
    *,
    timeout: str,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Until the service is gone (describe answers 404): its tasks stopped, it removed."""
    deadline = deadline_of(timeout)
    with Watch(f"{name} deleting") as watch:
        while True:
            try:
                service = client.describe_service(name)
            except ApiError as exc:
                if exc.status == 404:
                    return
                raise
            live = service.running_count + service.pending_count
            watch.update(0, 0, f"{service.status.value}, {live} task(s) not yet stopped")
            if time.monotonic() >= deadline:
                raise _timed_out(timeout, f"service {name} to be gone")
            sleep(POLL_SECONDS)
