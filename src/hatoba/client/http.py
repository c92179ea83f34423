"""``HatobaClient``: the REST API as typed Python calls returning hatoba's model objects.

Why a client layer at all: the CLI (and later the web UI, tests, scripts) should see models
and typed errors, never raw HTTP, so every caller handles failures the same way.
"""

from __future__ import annotations

import os
import socket
import ssl
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any
from urllib.parse import quote

import httpx

from hatoba.client.errors import ApiError, ServerUnavailable
from hatoba.client.logs import LogLine, parse_ndjson
from hatoba.model.errors import FieldError
from hatoba.model.job import Job, JobEvent, JobRun, JobSpec
from hatoba.model.node import NodeDescription
from hatoba.model.scaling import (
    ScalableTarget,
    ScalingActivity,
    ScalingPolicy,
    ScheduledAction,
)
from hatoba.model.scaling_view import ScalingDescription
from hatoba.model.service import Service, ServiceEvent, ServiceSpec, ServiceUpdate
from hatoba.model.task import DesiredStatus, LastStatus, Task, TaskOverride
from hatoba.model.taskdef import TaskDefinition, TaskDefinitionStatus

MAX_SERVER_WAIT = 300.0  # the server's long-poll ceiling (GET /v1/tasks/{ref}/wait)


@dataclass(frozen=True)
class Failure:
    """A task RunTask could not place (ECS's ``failures``), e.g. reason ``RESOURCE:MEMORY``."""

    arn: str
    reason: str
    detail: str


@dataclass(frozen=True)
class RunResult:
    tasks: list[Task] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)


@dataclass(frozen=True)
class NextFires:
    """A job's next scheduled ticks, in UTC (``timezone`` is the job's, for display)."""

    job_name: str
    timezone: str
    fire_times: list[datetime]
    schedule: str | None = None
    flexible_window_minutes: int = 0


def _ref(ref: str) -> str:
    return quote(ref, safe=":")


def tls_context() -> ssl.SSLContext:
    """Server certificates are checked against the system's CAs, plus ``HATOBA_CA_CERT``
    (a PEM file) for a server with its own or a self-signed certificate."""
    return ssl.create_default_context(cafile=os.environ.get("HATOBA_CA_CERT") or None)


def no_delay_transport() -> httpx.HTTPTransport:
    """httpx sends a request's headers and body in separate writes; with Nagle's algorithm
    on, the body then waits for the server's delayed ACK (~40 ms on Linux) on every POST."""
    return httpx.HTTPTransport(
        socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)], verify=tls_context()
    )


class HatobaClient:
    """Synchronous client for one hatoba control plane (``base_url`` like http://host:7117)."""

    def __init__(self, base_url: str, token: str, timeout: float = 30) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            transport=no_delay_transport(),
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HatobaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------------
    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """One API call returning its JSON body; API errors raise ``ApiError``."""
        return self._request(method, path, **kwargs)

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise ServerUnavailable(f"no hatoba server at {self.base_url} ({exc})") from exc
        except httpx.TransportError as exc:
            raise ServerUnavailable(f"lost the connection to {self.base_url} ({exc})") from exc
        _raise_for_error(response)
        return response.json()

    # -- system -----------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        body: dict[str, Any] = self._request("GET", "/v1/health", timeout=5)
        return body

    # -- task definitions -------------------------------------------------------------------
    def register_task_definition(
        self, data: dict[str, Any]
    ) -> tuple[TaskDefinition, list[FieldError]]:
        body = self._request("POST", "/v1/task-definitions", json=data)
        warnings = [FieldError(w["path"], w["message"]) for w in body.get("warnings", [])]
        return TaskDefinition.model_validate(body["taskDefinition"]), warnings

    def list_task_definitions(
        self, family: str | None = None, status: TaskDefinitionStatus | str | None = None
    ) -> list[TaskDefinition]:
        params = {k: str(v) for k, v in {"family": family, "status": status}.items() if v}
        body = self._request("GET", "/v1/task-definitions", params=params)
        return [TaskDefinition.model_validate(t) for t in body["taskDefinitions"]]

    def describe_task_definition(self, ref: str) -> TaskDefinition:
        return TaskDefinition.model_validate(
            self._request("GET", f"/v1/task-definitions/{_ref(ref)}")
        )

    def export_task_definition(self, ref: str) -> dict[str, Any]:
        body: dict[str, Any] = self._request("GET", f"/v1/task-definitions/{_ref(ref)}/export")
        return body

    def deregister_task_definition(self, ref: str) -> TaskDefinition:
        return TaskDefinition.model_validate(
            self._request("DELETE", f"/v1/task-definitions/{_ref(ref)}")
        )

    # -- tasks ------------------------------------------------------------------------------
    def run_task(
        self,
        task_definition: str,
        *,
        count: int = 1,
        overrides: TaskOverride | None = None,
        started_by: str | None = None,
        group: str | None = None,
        timeout_seconds: float | None = None,
        allow_shrink: bool = False,
        placement_constraints: list[dict[str, str]] | None = None,
        placement_strategy: list[dict[str, str]] | None = None,
    ) -> RunResult:
        payload: dict[str, Any] = {"taskDefinition": task_definition, "count": count}
        if overrides is not None:
            payload["overrides"] = overrides.model_dump(
                mode="json", by_alias=True, exclude_none=True
            )
        for key, value in (
            ("startedBy", started_by),
            ("group", group),
            ("timeoutSeconds", timeout_seconds),
        ):
            if value is not None:
                payload[key] = value
        if allow_shrink:
            payload["allowShrink"] = True
        if placement_constraints:
            payload["placementConstraints"] = placement_constraints
        if placement_strategy:
            payload["placementStrategy"] = placement_strategy
        body = self._request("POST", "/v1/tasks", json=payload)
        return RunResult(
            tasks=[Task.model_validate(t) for t in body.get("tasks", [])],
            failures=[
                Failure(str(f.get("arn", "")), str(f.get("reason", "")), str(f.get("detail", "")))
                for f in body.get("failures", [])
            ],
        )

    def list_tasks(
        self,
        *,
        family: str | None = None,
        desired_status: DesiredStatus | str | None = None,
        started_by: str | None = None,
        limit: int | None = None,
    ) -> list[Task]:
        params: dict[str, str] = {}
        if family:
            params["family"] = family
        if desired_status:
            params["desiredStatus"] = str(desired_status)
        if started_by:
            params["startedBy"] = started_by
        if limit is not None:
            params["limit"] = str(limit)
        body = self._request("GET", "/v1/tasks", params=params)
        return [Task.model_validate(t) for t in body["tasks"]]

    def describe_task(self, ref: str) -> Task:
        return Task.model_validate(self._request("GET", f"/v1/tasks/{_ref(ref)}"))

    def stop_task(self, ref: str, reason: str | None = None) -> Task:
        body = {"reason": reason} if reason is not None else {}
        return Task.model_validate(self._request("POST", f"/v1/tasks/{_ref(ref)}/stop", json=body))

    def wait_task(
        self, ref: str, status: LastStatus = LastStatus.STOPPED, timeout: float | None = None
    ) -> Task:
        """Block until the task's lastStatus reaches (or passes) ``status``.

        Loops the server's long poll (at most 300 s per request) so ``timeout`` may be longer
        or ``None`` (forever). Returns the task as last seen; check ``last_status`` to tell a
        timeout from success.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = MAX_SERVER_WAIT if deadline is None else deadline - time.monotonic()
            poll = max(0.0, min(MAX_SERVER_WAIT, left))
            task = Task.model_validate(
                self._request(
                    "GET",
                    f"/v1/tasks/{_ref(ref)}/wait",
                    params={"status": status.value, "timeout": f"{poll:.3f}"},
                    timeout=poll + self.timeout,
                )
            )
            if task.last_status.rank >= status.rank:
                return task
            if deadline is not None and time.monotonic() >= deadline:
                return task

    def stream_logs(
        self,
        ref: str,
        follow: bool = False,
        container: str | None = None,
        since_ns: int | None = None,
    ) -> Iterator[LogLine]:
        """The task's output as ``LogLine``s; with ``follow``, until the task has stopped."""
        params: dict[str, str] = {"follow": "true" if follow else "false"}
        if container is not None:
            params["container"] = container
        if since_ns is not None:
            params["sinceNs"] = str(since_ns)
        yield from self._ndjson(f"/v1/tasks/{_ref(ref)}/logs", params, follow)

    def logs(
        self,
        target: str,
        *,
        follow: bool = False,
        options: Mapping[str, str | int | bool | None] | None = None,
    ) -> Iterator[LogLine]:
        """``GET /v1/logs``: a task (id or prefix), ``service/NAME`` or ``job/NAME``;
        ``options`` are the query's (since, until, grep, container, stream, tail, raw)."""
        params = {"target": target, "follow": "true" if follow else "false"}
        for key, value in (options or {}).items():
            if value is not None and value is not False:
                params[key] = "true" if value is True else str(value)
        yield from self._ndjson("/v1/logs", params, follow)

    def _ndjson(self, path: str, params: dict[str, str], follow: bool) -> Iterator[LogLine]:
        timeout = httpx.Timeout(self.timeout, read=None if follow else self.timeout)
        try:
            with self._http.stream("GET", path, params=params, timeout=timeout) as response:
                if response.status_code >= 400:
                    response.read()
                    _raise_for_error(response)
                yield from parse_ndjson(response.iter_lines())
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise ServerUnavailable(f"no hatoba server at {self.base_url} ({exc})") from exc
        except httpx.TransportError as exc:
            raise ServerUnavailable(f"lost the connection to {self.base_url} ({exc})") from exc

    # -- nodes ------------------------------------------------------------------------------
    def list_nodes(self) -> list[NodeDescription]:
        body = self._request("GET", "/v1/nodes")
        return [NodeDescription.model_validate(n) for n in body["nodes"]]

    def describe_node(self, node_id: str) -> NodeDescription:
        return NodeDescription.model_validate(self._request("GET", f"/v1/nodes/{_ref(node_id)}"))

    def drain_node(self, node_id: str) -> NodeDescription:
        return NodeDescription.model_validate(
            self._request("POST", f"/v1/nodes/{_ref(node_id)}/drain")
        )

    def activate_node(self, node_id: str) -> NodeDescription:
        return NodeDescription.model_validate(
            self._request("POST", f"/v1/nodes/{_ref(node_id)}/activate")
        )

    # -- services ---------------------------------------------------------------------------
    def create_service(self, spec: ServiceSpec) -> Service:
        body = self._request("POST", "/v1/services", json=spec.wire())
        return Service.model_validate(body)

    def update_service(self, name: str, update: ServiceUpdate) -> Service:
        """UpdateService: only the fields set on ``update`` are sent (and change)."""
        payload = update.model_dump(mode="json", by_alias=True, exclude_unset=True)
        body = self._request("PATCH", f"/v1/services/{_ref(name)}", json=payload)
        return Service.model_validate(body)

    def describe_service(self, name: str) -> Service:
        return Service.model_validate(self._request("GET", f"/v1/services/{_ref(name)}"))

    def list_services(self) -> list[Service]:
        body = self._request("GET", "/v1/services")
        return [Service.model_validate(s) for s in body["services"]]

    def delete_service(self, name: str, force: bool = False) -> Service:
        params = {"force": "true" if force else "false"}
        body = self._request("DELETE", f"/v1/services/{_ref(name)}", params=params)
        return Service.model_validate(body)

    def scale_service(self, name: str, desired_count: int) -> Service:
        body = self._request(
            "POST", f"/v1/services/{_ref(name)}/scale", json={"desiredCount": desired_count}
        )
        return Service.model_validate(body)

    def service_events(
        self, name: str, limit: int = 100, after_id: int | None = None
    ) -> list[ServiceEvent]:
        """Newest first; with ``after_id`` only the newer ones."""
        params = {"limit": str(limit)}
        if after_id is not None:
            params["afterId"] = str(after_id)
        body = self._request("GET", f"/v1/services/{_ref(name)}/events", params=params)
        return [ServiceEvent.model_validate(e) for e in body["events"]]

    def service_tasks(self, name: str, live_only: bool = True) -> list[Task]:
        params = {"liveOnly": "true" if live_only else "false"}
        body = self._request("GET", f"/v1/services/{_ref(name)}/tasks", params=params)
        return [Task.model_validate(t) for t in body["tasks"]]

    # -- autoscaling ------------------------------------------------------------------------
    def register_scalable_target(self, name: str, body: Mapping[str, Any]) -> ScalableTarget:
        """RegisterScalableTarget: ``minCapacity``, ``maxCapacity`` (required the first
        time), ``suspendedState``, ``scaleToZeroCooldownSeconds``; only those given change."""
        path = f"/v1/services/{_ref(name)}/scaling"
        return ScalableTarget.model_validate(self._request("PUT", path, json=dict(body)))

    def describe_scalable_target(self, name: str) -> ScalableTarget:
        path = f"/v1/services/{_ref(name)}/scaling"
        return ScalableTarget.model_validate(self._request("GET", path))

    def deregister_scalable_target(self, name: str) -> ScalableTarget:
        """With its policies and scheduled actions; returns the target as it was."""
        path = f"/v1/services/{_ref(name)}/scaling"
        return ScalableTarget.model_validate(self._request("DELETE", path))

    def list_scalable_targets(self) -> list[ScalableTarget]:
        body = self._request("GET", "/v1/scaling")
        return [ScalableTarget.model_validate(t) for t in body["scalableTargets"]]

    def describe_scaling(self, name: str) -> ScalingDescription:
        """Target, policies with their live metric, scheduled actions, last decision, counts."""
        path = f"/v1/services/{_ref(name)}/scaling/describe"
        return ScalingDescription.model_validate(self._request("GET", path))

    def put_scaling_policy(
        self, name: str, policy_name: str, body: Mapping[str, Any]
    ) -> ScalingPolicy:
        path = f"/v1/services/{_ref(name)}/scaling/policies/{_ref(policy_name)}"
        return ScalingPolicy.model_validate(self._request("PUT", path, json=dict(body)))

    def delete_scaling_policy(self, name: str, policy_name: str) -> ScalingPolicy:
        path = f"/v1/services/{_ref(name)}/scaling/policies/{_ref(policy_name)}"
        return ScalingPolicy.model_validate(self._request("DELETE", path))

    def put_scheduled_action(
        self, name: str, action_name: str, body: Mapping[str, Any]
    ) -> ScheduledAction:
        path = f"/v1/services/{_ref(name)}/scaling/scheduled-actions/{_ref(action_name)}"
        return ScheduledAction.model_validate(self._request("PUT", path, json=dict(body)))

    def delete_scheduled_action(self, name: str, action_name: str) -> ScheduledAction:
        path = f"/v1/services/{_ref(name)}/scaling/scheduled-actions/{_ref(action_name)}"
        return ScheduledAction.model_validate(self._request("DELETE", path))

    def scaling_activities(self, name: str, limit: int = 50) -> list[ScalingActivity]:
        """Newest first."""
        path = f"/v1/services/{_ref(name)}/scaling/activities"
        body = self._request("GET", path, params={"limit": str(limit)})
        return [ScalingActivity.model_validate(a) for a in body["activities"]]

    def validate_scaling(self, block: Mapping[str, Any]) -> None:
        """Check a whole declaration (the app file's ``scaling:`` block); ``ApiError`` 422
        naming each problem (``policies[0].targetTrackingConfiguration.metric...``)."""
        self._request("POST", "/v1/scaling/validate", json=dict(block))

    # -- jobs -------------------------------------------------------------------------------
    def create_job(self, spec: JobSpec) -> Job:
        return Job.model_validate(self._request("POST", "/v1/jobs", json=spec.wire()))

    def update_job(self, spec: JobSpec) -> Job:
        """Replace the job's whole spec (fields left at their defaults take them)."""
        path = f"/v1/jobs/{_ref(spec.job_name)}"
        return Job.model_validate(self._request("PUT", path, json=spec.wire()))

    def describe_job(self, name: str) -> Job:
        return Job.model_validate(self._request("GET", f"/v1/jobs/{_ref(name)}"))

    def list_jobs(self) -> list[Job]:
        return [Job.model_validate(j) for j in self._request("GET", "/v1/jobs")["jobs"]]

    def delete_job(self, name: str) -> Job:
        return Job.model_validate(self._request("DELETE", f"/v1/jobs/{_ref(name)}"))

    def enable_job(self, name: str, enabled: bool = True) -> Job:
        verb = "enable" if enabled else "disable"
        return Job.model_validate(self._request("POST", f"/v1/jobs/{_ref(name)}/{verb}"))

    def run_job(self, name: str) -> JobRun:
        """Start a run now; it is PENDING until the scheduler launches it."""
        return JobRun.model_validate(self._request("POST", f"/v1/jobs/{_ref(name)}/runs"))

    def job_runs(self, name: str, limit: int = 50, before: str | None = None) -> list[JobRun]:
        """Newest first; ``before``: the last run id of the previous page."""
        params = {"limit": str(limit)} | ({"before": before} if before else {})
        body = self._request("GET", f"/v1/jobs/{_ref(name)}/runs", params=params)
        return [JobRun.model_validate(r) for r in body["runs"]]

    def job_run(self, run_id: str) -> JobRun:
        return JobRun.model_validate(self._request("GET", f"/v1/job-runs/{_ref(run_id)}"))

    def cancel_job_run(self, run_id: str, reason: str | None = None) -> JobRun:
        body = {"reason": reason} if reason is not None else {}
        path = f"/v1/job-runs/{_ref(run_id)}/cancel"
        return JobRun.model_validate(self._request("POST", path, json=body))

    def wait_job_run(
        self, run_id: str, *, finished: bool = False, timeout: float | None = None
    ) -> JobRun:
        """Block until the run has a task or has finished (``finished``: has finished),
        looping the server's long poll; returns the run as last seen at ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = MAX_SERVER_WAIT if deadline is None else deadline - time.monotonic()
            poll = max(0.0, min(MAX_SERVER_WAIT, left))
            run = JobRun.model_validate(
                self._request(
                    "GET",
                    f"/v1/job-runs/{_ref(run_id)}/wait",
                    params={"finished": str(finished).lower(), "timeout": f"{poll:.3f}"},
                    timeout=poll + self.timeout,
                )
            )
            if not run.active or (not finished and run.task_ids):
                return run
            if deadline is not None and time.monotonic() >= deadline:
                return run

    def job_events(
        self, name: str, limit: int = 100, after_id: int | None = None
    ) -> list[JobEvent]:
        """Newest first; with ``after_id`` only the newer ones."""
        params = {"limit": str(limit)} | ({"afterId": str(after_id)} if after_id else {})
        body = self._request("GET", f"/v1/jobs/{_ref(name)}/events", params=params)
        return [JobEvent.model_validate(e) for e in body["events"]]

    def job_next(self, name: str, n: int = 5, after: datetime | None = None) -> NextFires:
        params = {"n": str(n)} | ({"after": after.isoformat()} if after else {})
        body = self._request("GET", f"/v1/jobs/{_ref(name)}/next", params=params)
        return NextFires(
            job_name=body["jobName"],
            timezone=body["timezone"],
            fire_times=[datetime.fromisoformat(t) for t in body["fireTimes"]],
            schedule=body.get("schedule"),
            flexible_window_minutes=int(body.get("flexibleWindowMinutes", 0)),
        )

    def exec(
        self,
        ref: str,
        argv: list[str],
        container: str | None = None,
        tty: bool = False,
        stdin: IO[bytes] | None = None,
        stdout: IO[bytes] | None = None,
        stderr: IO[bytes] | None = None,
    ) -> int:
        """Run ``argv`` inside the task's container; returns its exit code.

        See ``hatoba.client.exec_session`` for the WebSocket protocol and terminal handling.
        """
        from hatoba.client.exec_session import run_exec

        return run_exec(
            self.base_url,
            self.token,
            ref,
            argv,
            container=container,
            tty=tty,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
        )


def _raise_for_error(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        body = response.json()
    except ValueError:
        body = None
    raise ApiError.from_body(
        response.status_code, body, response.text.strip() or response.reason_phrase
    )
