"""Job webhooks: the payloads (Slack-compatible or generic JSON) and the delivery worker.

Notifications are queued in the store's outbox in the same transaction as the run change they
report (``notifications_for``), so none is lost to a crash and none is sent for a change that
did not commit. The worker (``Deliveries``) drains the outbox on its own coroutine, a few
deliveries at a time, and never holds up the scheduler: a slow or dead endpoint only delays
its own deliveries. A delivery that fails (connection error, timeout, any non-2xx answer) is
retried with exponential backoff (``base * 2^n``, jittered, at most 10 minutes apart) until it
is ``give_up`` (1 hour) old, then marked FAILED; each failure is a job event, naming the
endpoint by scheme and host only (webhook URLs often carry a secret in their path).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx

from hatoba.model.clock import Clock
from hatoba.model.job import (
    DeliveryStatus,
    Job,
    JobEvent,
    JobNotification,
    JobRun,
    NotificationEvent,
    NotificationFormat,
    NotificationTarget,
    RunStatus,
)
from hatoba.store.protocol import Store
from hatoba.supervise import Supervisor

log = logging.getLogger("hatoba.jobs.notify")


@dataclass(frozen=True)
class DeliverySettings:
    backoff: float = 5.0  # seconds before the first retry; doubles each time
    max_backoff: float = 600.0
    give_up: float = 3600.0  # seconds after queueing
    timeout: float = 10.0  # per request
    concurrency: int = 8


def notifications_for(
    job: Job, run: JobRun, events: list[NotificationEvent], now: datetime
) -> list[JobNotification]:
    """The outbox items for ``events`` of ``run``: one per target subscribed to each."""
    out = []
    for event in events:
        for target in job.notifications:
            if event not in target.events:
                continue
            out.append(
                JobNotification(
                    job_name=job.job_name,
                    run_id=run.run_id,
                    event=event,
                    url=target.url,
                    payload=payload(target, event, job, run),
                    next_attempt_at=now,
                    created_at=now,
                )
            )
    return out


def payload(
    target: NotificationTarget, event: NotificationEvent, job: Job, run: JobRun
) -> dict[str, Any]:
    body = generic_payload(event, job, run)
    if target.format == NotificationFormat.SLACK:
        return slack_payload(body)
    return body


def generic_payload(event: NotificationEvent, job: Job, run: JobRun) -> dict[str, Any]:
    last = run.attempts[-1] if run.attempts else None
    return {
        "event": event.value,
        "job": job.job_name,
        "runId": run.run_id,
        "status": run.status.value,
        "trigger": run.trigger.value,
        "tick": _iso(run.tick),
        "parentRunId": run.parent_run_id,
        "attempt": run.task_attempts,
        "maxAttempts": job.retry.max_attempts,
        "exitCode": run.exit_code,
        "stopCode": last.stop_code if last else None,
        "reason": run.reason,
        "taskIds": run.task_ids,
        "taskDefinition": job.task_definition,
        "startedAt": _iso(run.attempts[0].started_at) if run.attempts else None,
        "finishedAt": _iso(run.finished_at),
    }


_WORDS = {
    "start": ("started", ":arrow_forward:"),
    "success": ("succeeded", ":white_check_mark:"),
    "failure": ("failed", ":x:"),
    "retriesExhausted": ("failed after its last attempt", ":rotating_light:"),
}


def slack_payload(body: dict[str, Any]) -> dict[str, Any]:
    """Slack's incoming-webhook shape: ``text`` (what every client shows) and ``blocks``."""
    word, emoji = _WORDS.get(body["event"], (body["event"], ":information_source:"))
    text = f"{emoji} job *{body['job']}* run `{body['runId']}` {word}"
    if body["exitCode"] is not None and body["event"] != NotificationEvent.START:
        text += f" (exit code {body['exitCode']})"
    details = [
        f"status *{body['status']}*",
        f"trigger {body['trigger']}",
        f"attempt {body['attempt']}/{body['maxAttempts']}",
    ]
    if body["tick"]:
        details.append(f"scheduled {body['tick']}")
    if body["reason"]:
        details.append(str(body["reason"]))
    if body["taskIds"]:
        details.append("tasks " + ", ".join(f"`{t[:12]}`" for t in body["taskIds"]))
    return {
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(details)}]},
        ],
    }


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat().replace("+00:00", "Z")


def endpoint(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"


def status_events(run: JobRun, max_attempts: int) -> list[NotificationEvent]:
    """What a run that just finished reports."""
    if run.status == RunStatus.SUCCEEDED:
        return [NotificationEvent.SUCCESS]
    if run.status == RunStatus.FAILED:
        out = [NotificationEvent.FAILURE]
        if max_attempts > 1 and run.task_attempts >= max_attempts:
            out.append(NotificationEvent.RETRIES_EXHAUSTED)
        return out
    return []


class Deliveries:
    """Drains the outbox. ``poke()`` after queueing wakes it at once; otherwise it sleeps
    until the earliest retry is due."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        settings: DeliverySettings | None = None,
        *,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._store = store
        self._clock = clock
        self.settings = settings or DeliverySettings()
        self._rand = rand
        self._poked = asyncio.Event()
        self._inflight: dict[int, asyncio.Task[None]] = {}

    def poke(self) -> None:
        self._poked.set()

    async def run(self) -> None:
        supervisor = Supervisor("job-webhooks")
        s = self.settings
        try:
            async with httpx.AsyncClient(timeout=s.timeout, follow_redirects=False) as client:
                while True:
                    self._poked.clear()
                    try:
                        await self._start_due(client, supervisor)
                        wait = await self._until_next()
                    except Exception:
                        log.exception("reading the webhook outbox failed")
                        wait = s.backoff
                    await self._sleep(wait)
        finally:
            await supervisor.close()

    async def _start_due(self, client: httpx.AsyncClient, supervisor: Supervisor) -> None:
        room = self.settings.concurrency - len(self._inflight)
        if room <= 0:
            return
        due = await self._store.due_job_notifications(self._clock.now(), room * 2)
        for note in due:
            if note.id in self._inflight:
                continue
            if len(self._inflight) >= self.settings.concurrency:
                break
            task = supervisor.start(self._deliver(client, note), f"deliver-{note.id}")
            self._inflight[note.id] = task

    async def _until_next(self) -> float | None:
        at = await self._store.next_job_notification_at()
        if at is None:
            return None
        delay = (at - self._clock.now()).total_seconds()
        if delay <= 0:
            # due, and in flight (or no room): a finishing delivery pokes
            return None if self._inflight else 0.0
        return delay

    async def _sleep(self, seconds: float | None) -> None:
        """Until poked, or ``seconds`` (by the clock) have passed."""
        if self._poked.is_set():
            return
        poked = asyncio.ensure_future(self._poked.wait())
        waits: set[asyncio.Future[Any]] = {poked}
        if seconds is not None:
            waits.add(asyncio.ensure_future(self._clock.sleep(max(0.0, seconds))))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
            for w in waits:
                with contextlib.suppress(asyncio.CancelledError):
                    await w

    async def _deliver(self, client: httpx.AsyncClient, note: JobNotification) -> None:
        try:
            error = await self._post(client, note)
            await self._record(note, error)
        except Exception:
            log.exception("recording webhook delivery %s failed", note.id)
        finally:
            self._inflight.pop(note.id, None)
            self.poke()

    async def _post(self, client: httpx.AsyncClient, note: JobNotification) -> str | None:
        """None when delivered, else what went wrong."""
        try:
            response = await client.post(note.url, json=note.payload)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}"

    async def _record(self, note: JobNotification, error: str | None) -> None:
        s = self.settings
        now = self._clock.now()
        attempts = note.attempts + 1
        where = endpoint(note.url)
        what = f"{note.event.value} notification for run {note.run_id} to {where}"
        if error is None:
            done = note.model_copy(
                update={
                    "status": DeliveryStatus.DELIVERED,
                    "attempts": attempts,
                    "delivered_at": now,
                    "last_error": None,
                }
            )
            await self._store.update_job_notification(done)
            return
        delay = min(s.max_backoff, s.backoff * 2.0 ** min(attempts - 1, 30))
        delay *= 0.5 + self._rand() / 2  # jitter, never below half
        next_at = now + timedelta(seconds=delay)
        if next_at - note.created_at > timedelta(seconds=s.give_up):
            failed = note.model_copy(
                update={"status": DeliveryStatus.FAILED, "attempts": attempts, "last_error": error}
            )
            await self._store.update_job_notification(failed)
            message = f"gave up on the {what} after {attempts} attempts: {error}"
        else:
            retry = note.model_copy(
                update={"attempts": attempts, "next_attempt_at": next_at, "last_error": error}
            )
            await self._store.update_job_notification(retry)
            message = f"{what} failed (attempt {attempts}): {error}; retrying in {delay:.1f} s"
        await self._store.append_job_events(
            [JobEvent(job_name=note.job_name, created_at=now, message=message)]
        )

    async def drain(self) -> None:
        """Wait for the deliveries in flight (tests, shutdown)."""
        while self._inflight:
            await asyncio.wait(list(self._inflight.values()))
