"""Following a job run: the output of every attempt, in order, and the run's outcome as an
exit status (``hatoba job run --follow``, ``hatoba job logs --follow``).

An attempt's task is streamed until it stops (``client.stream_logs(follow=True)``); then
the run is read again: RETRYING means a next attempt will start (its reason, with the delay,
goes to stderr) and its task is followed as soon as it has one; a finished run ends it.

Exit statuses follow ``hatoba run``: the last attempt's own exit code, else 125 it never
started (launch failures until the deadline, or TaskFailedToStart), 124 it timed out, 123
lost (stopped without an exit code), 130 interrupted (the run is cancelled first).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable

from hatoba.cli import output
from hatoba.cli.exitcodes import CANNOT_START, LOST, TIMED_OUT, process_exit_status
from hatoba.cli.logs_out import write_lines
from hatoba.client import HatobaClient
from hatoba.model.job import JobAttempt, JobRun, RunStatus
from hatoba.model.task import LastStatus, StopCode

POLL_SECONDS = 0.2  # between looks at a RETRYING run for its next attempt's task
CANCEL_WAIT_SECONDS = 30.0


def task_attempts(run: JobRun) -> list[JobAttempt]:
    """The attempts that ran (or are launching) a task, in order; launch failures left out.
    Attempt N in the run's reasons is the N-th of these."""
    return [a for a in run.attempts if a.launch_failure is None]


def run_exit_status(run: JobRun) -> int:
    """The exit status a finished run stands for."""
    if run.status == RunStatus.SUCCEEDED:
        return 0
    ran = [a for a in task_attempts(run) if a.task_id is not None]
    if not ran:
        return 1 if run.status == RunStatus.CANCELLED else CANNOT_START
    last = ran[-1]
    if last.stop_code == StopCode.TASK_FAILED_TO_START.value:
        return CANNOT_START
    if last.stop_code == StopCode.TASK_TIMED_OUT.value:
        return TIMED_OUT
    if last.exit_code is None:
        return LOST
    code = process_exit_status(last.exit_code)
    return code if code != 0 else 1  # FAILED or CANCELLED, whatever the process said


def attempt_outcome(attempt: JobAttempt) -> str:
    """How an attempt ended, as the run's reasons say it."""
    if attempt.stop_code == StopCode.TASK_TIMED_OUT.value:
        return "timed out"
    if attempt.exit_code is not None:
        return f"exit code {attempt.exit_code}"
    return attempt.stopped_reason or attempt.stop_code or "stopped"


def outcome(run: JobRun) -> str:
    n = len(task_attempts(run))
    tries = f"{n} attempt{'s' if n != 1 else ''}"
    why = f": {run.reason}" if run.reason and run.status != RunStatus.SUCCEEDED else ""
    return f"run {run.run_id} {run.status.value} after {tries}{why}"


def follow_run(
    client: HatobaClient,
    run: JobRun,
    *,
    prefix: bool = False,
    as_json: bool = False,
    first: int = 1,
    only: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> JobRun:
    """Write the output of the run's attempts (from attempt ``first``, or just ``only``),
    following each task, until the run has finished; returns the finished run."""
    shown = (only or first) - 1  # attempts already dealt with
    retry_told = shown  # the last attempt whose failure (and retry) was told
    while True:
        attempts = task_attempts(run)
        ready = [a for a in attempts if a.task_id is not None]
        if shown < len(ready) and (only is None or shown < only):
            attempt = ready[shown]
            assert attempt.task_id is not None
            if shown > 0 and retry_told < shown:  # retried before we saw it RETRYING
                output.info(
                    f"hatoba: attempt {shown} failed: {attempt_outcome(ready[shown - 1])}; "
                    f"attempt {shown + 1}"
                )
                retry_told = shown
            output.info(
                f"hatoba: {run.job_name} run {run.run_id} attempt {shown + 1}: "
                f"task {attempt.task_id}",
                style="dim",
            )
            write_lines(
                client.stream_logs(attempt.task_id, follow=True), prefix=prefix, as_json=as_json
            )
            shown += 1
            run = client.job_run(run.run_id)
            continue
        if not run.active or (only is not None and shown >= only):
            return run
        if run.status == RunStatus.RETRYING and retry_told < len(ready):
            output.info(f"hatoba: {run.reason}")
            retry_told = len(ready)
        if not ready:
            run = client.wait_job_run(run.run_id, timeout=None)  # until it has a task
        else:
            sleep(POLL_SECONDS)
            run = client.job_run(run.run_id)


def finish_followed(run: JobRun, *, as_json: bool) -> int:
    """After ``follow_run``: the run on stdout (JSON), its outcome on stderr; the status."""
    if as_json:
        sys.stdout.write(json.dumps({"run": output.to_json(run)}) + "\n")
        sys.stdout.flush()
    output.info(f"hatoba: {outcome(run)}")
    return run_exit_status(run)


def cancel_interrupted(client: HatobaClient, run: JobRun) -> None:
    """Ctrl-C while following: cancel the run (its task is stopped) and wait for that."""
    output.info(f"hatoba: interrupted; cancelling run {run.run_id}")
    try:
        cancelled = client.cancel_job_run(
            run.run_id, reason="Interrupted (Ctrl-C) during hatoba job run --follow"
        )
        with output.waiting("stopping..."):
            for task_id in cancelled.task_ids[-1:]:
                client.wait_task(task_id, LastStatus.STOPPED, timeout=CANCEL_WAIT_SECONDS)
    except KeyboardInterrupt:
        output.info("hatoba: not waiting for the run to stop")
