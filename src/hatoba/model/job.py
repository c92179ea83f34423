"""Jobs: a task definition run on a schedule (cron / rate / at), on demand, or chained after
another job, with an overlap policy, a missed-run policy, retries, a timeout per attempt,
webhook notifications and a run history.

A job's tasks carry ``group = "job:NAME"`` and ``startedBy = <run id>``, so every task can be
traced to the run (and the run to its attempts) that started it. A scheduled run is unique per
``(jobName, tick)`` in the store: that is what makes a tick start at most once.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field, field_validator

from hatoba.model.base import WireModel
from hatoba.model.service import SERVICE_NAME_PATTERN
from hatoba.model.task import TaskOverride

JOB_NAME_PATTERN = SERVICE_NAME_PATTERN
JOB_GROUP_PREFIX = "job:"
MAX_JOB_EVENTS_KEPT = 100  # per job, as for services
DEFAULT_STARTING_DEADLINE = 3600  # seconds a tick may start late (missed-run catch-up too)
MAX_STARTING_DEADLINE = 7 * 86400
DEFAULT_MAX_MISSED_RUNS = 100  # as Kubernetes CronJobs
MAX_ATTEMPTS = 10


class OverlapPolicy(StrEnum):
    """What a scheduled tick does while an earlier run of the job is still active
    (Kubernetes' concurrencyPolicy)."""

    ALLOW = "Allow"  # start it anyway
    FORBID = "Forbid"  # record the tick as SKIPPED
    REPLACE = "Replace"  # stop the active run(s) (CANCELLED), then start


class MissedRunPolicy(StrEnum):
    """What happens to ticks that were due while no control plane was scheduling."""

    NONE = "none"  # skip them all
    LATEST = "latest"  # start the newest one, skip the others
    ALL = "all"  # start every one (at most maxMissedRuns)


class RunTrigger(StrEnum):
    SCHEDULE = "schedule"
    MANUAL = "manual"
    CHAIN = "chain"


class RunStatus(StrEnum):
    PENDING = "PENDING"  # claimed / requested; its first attempt is being launched
    RUNNING = "RUNNING"  # an attempt's task was launched
    RETRYING = "RETRYING"  # an attempt failed; the next one starts at nextAttemptAt
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"  # a tick that did not run (overlap, missed); ``reason`` says why
    CANCELLED = "CANCELLED"  # stopped: replaced, stopped by a user, job deleted

    @property
    def finished(self) -> bool:
        return self not in _ACTIVE


_ACTIVE = frozenset({RunStatus.PENDING, RunStatus.RUNNING, RunStatus.RETRYING})
ACTIVE_RUN_STATUSES = tuple(sorted(_ACTIVE))


class NotificationEvent(StrEnum):
    START = "start"  # a run's first attempt was launched
    SUCCESS = "success"  # the run SUCCEEDED
    FAILURE = "failure"  # the run FAILED
    RETRIES_EXHAUSTED = "retriesExhausted"  # FAILED after its last allowed attempt (> 1)


class NotificationFormat(StrEnum):
    SLACK = "slack"  # {"text": ..., "blocks": [...]} (Slack incoming webhooks, Mattermost, ...)
    JSON = "json"  # {"event", "job", "runId", "status", "exitCode", ...}


class RetryPolicy(WireModel):
    """``maxAttempts`` counts attempts that ran a task (1 = no retry). Non-zero exits (and
    timeouts, lost tasks) are retried only with ``retryOnFailure``. Launch failures (no node
    has the capacity) are always retried, with the same backoff, and do not use up attempts:
    they go on until the run's starting deadline has passed, then the run FAILED."""

    max_attempts: int = Field(default=1, ge=1, le=MAX_ATTEMPTS)
    retry_on_failure: bool = False
    backoff_seconds: float = Field(default=10, ge=0, le=86400)  # base of 2^n, full jitter
    max_backoff_seconds: float = Field(default=600, ge=0, le=86400)


class ChainSpec(WireModel):
    """Jobs started (trigger ``chain``, ``parentRunId`` set) when a run finishes."""

    on_success: list[str] = Field(default_factory=list)
    on_failure: list[str] = Field(default_factory=list)
    always: list[str] = Field(default_factory=list)

    def targets(self, succeeded: bool) -> list[str]:
        """Jobs to start after a run that ``succeeded`` (or FAILED), each once, in order."""
        names = (self.on_success if succeeded else self.on_failure) + self.always
        return list(dict.fromkeys(names))

    def edges(self) -> list[tuple[str, str]]:
        """(JSON path, target) for every chained job."""
        return [
            (f"chain.{key}[{i}]", name)
            for key, names in (
                ("onSuccess", self.on_success),
                ("onFailure", self.on_failure),
                ("always", self.always),
            )
            for i, name in enumerate(names)
        ]


class NotificationTarget(WireModel):
    url: str
    format: NotificationFormat = NotificationFormat.JSON
    events: list[NotificationEvent] = Field(
        default_factory=lambda: [NotificationEvent.FAILURE, NotificationEvent.RETRIES_EXHAUSTED]
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")) or len(v) > 2048:
            raise ValueError("must be an http:// or https:// URL (at most 2048 characters)")
        return v


class JobSpec(WireModel):
    """What a user declares (the API, the CLI, the app file)."""

    job_name: str = Field(pattern=JOB_NAME_PATTERN)
    task_definition: str  # family, family:revision or ARN; resolved at each launch
    overrides: TaskOverride = Field(default_factory=TaskOverride)
    schedule: str | None = None  # cron(...), rate(...), at(...); None: manual / chain only
    timezone: str = "UTC"  # IANA name
    flexible_window_minutes: int = Field(default=0, ge=0, le=1440)
    enabled: bool = True
    overlap_policy: OverlapPolicy = OverlapPolicy.FORBID
    missed_run_policy: MissedRunPolicy = MissedRunPolicy.LATEST
    starting_deadline_seconds: int = Field(
        default=DEFAULT_STARTING_DEADLINE, ge=1, le=MAX_STARTING_DEADLINE
    )
    max_missed_runs: int = Field(default=DEFAULT_MAX_MISSED_RUNS, ge=1, le=1000)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    timeout_seconds: float | None = Field(default=None, gt=0)  # per attempt
    chain: ChainSpec = Field(default_factory=ChainSpec)
    notifications: list[NotificationTarget] = Field(default_factory=list, max_length=20)
    history_retention_days: int = Field(default=30, ge=1, le=3650)

    @field_validator("task_definition")
    @classmethod
    def _non_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v


class Job(JobSpec):
    """A stored job: its spec plus bookkeeping. ``lastTick`` is the scheduler's watermark:
    every tick up to it has been handled (started or recorded SKIPPED). It starts at the
    creation time, and moves to "now" when the job is enabled again or its schedule or time
    zone change, so ticks from before are not "missed"."""

    created_at: datetime
    updated_at: datetime
    last_tick: datetime | None = None
    version: int = 0  # compare-and-set counter, owned by the store

    @property
    def group(self) -> str:
        return job_group(self.job_name)

    def spec(self) -> JobSpec:
        return JobSpec.model_validate(self.model_dump(include=set(JobSpec.model_fields)))


class JobAttempt(WireModel):
    """One try at running the job's task. ``taskId`` None with neither ``stoppedAt`` nor
    ``launchFailure``: the launch is in flight (or a crash interrupted it; the scheduler then
    looks for a task with ``startedBy`` = the run id before launching again). ``launchedBy``
    names the scheduler (control plane) that launches it."""

    task_id: str | None = None
    started_at: datetime
    launched_by: str | None = None
    stopped_at: datetime | None = None
    exit_code: int | None = None
    stop_code: str | None = None
    stopped_reason: str | None = None
    launch_failure: str | None = None  # e.g. "RESOURCE:MEMORY (1 node)": no task started

    @property
    def in_flight(self) -> bool:
        return self.stopped_at is None and self.launch_failure is None


class JobRun(WireModel):
    run_id: str
    job_name: str
    tick: datetime | None = None  # the scheduled time; None for manual and chain runs
    trigger: RunTrigger = RunTrigger.SCHEDULE
    parent_run_id: str | None = None
    status: RunStatus = RunStatus.PENDING
    reason: str | None = None
    attempts: list[JobAttempt] = Field(default_factory=list)
    next_attempt_at: datetime | None = None
    created_at: datetime
    finished_at: datetime | None = None
    version: int = 0  # compare-and-set counter, owned by the store

    @property
    def active(self) -> bool:
        return not self.status.finished

    @property
    def task_ids(self) -> list[str]:
        return [a.task_id for a in self.attempts if a.task_id is not None]

    @property
    def task_attempts(self) -> int:
        """Attempts that started a task (launch failures do not count)."""
        return sum(1 for a in self.attempts if a.launch_failure is None)

    @property
    def exit_code(self) -> int | None:
        return self.attempts[-1].exit_code if self.attempts else None


class JobEvent(WireModel):
    job_name: str
    created_at: datetime
    message: str
    id: int = 0  # assigned by the store, increasing


class DeliveryStatus(StrEnum):
    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"  # gave up


class JobNotification(WireModel):
    """A webhook delivery in the outbox: written in the same transaction as the run change
    it reports, delivered (and retried) by the scheduler's delivery worker."""

    id: int = 0  # assigned by the store
    job_name: str
    run_id: str
    event: NotificationEvent
    url: str
    payload: dict[str, Any]
    status: DeliveryStatus = DeliveryStatus.PENDING
    attempts: int = 0
    next_attempt_at: datetime
    created_at: datetime
    delivered_at: datetime | None = None
    last_error: str | None = None


def job_group(name: str) -> str:
    return f"{JOB_GROUP_PREFIX}{name}"
