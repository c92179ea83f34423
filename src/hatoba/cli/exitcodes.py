"""How ``hatoba run`` turns a finished task into its own exit status.

Scripts and CI jobs run ``hatoba run --follow`` as if it were the command itself, so the
essential container's exit code passes straight through; hatoba's own outcomes get codes
that a command rarely uses (the ``docker run``/``timeout`` conventions), documented here.
"""

from __future__ import annotations

from hatoba.model.task import LastStatus, StopCode, Task

USAGE = 2
DEPLOYMENT_FAILED = 3  # hatoba service ... --wait: the deployment's rolloutState is FAILED
LOST = 123  # the task stopped without an exit code (node lost, host error)
TIMED_OUT = 124  # the task ran past --timeout (stopCode TaskTimedOut), as timeout(1)
CANNOT_START = 125  # placement failed, or stopCode TaskFailedToStart, as docker run
INTERRUPTED = 130  # Ctrl-C: 128 + SIGINT


def process_exit_status(code: int) -> int:
    """A container exit code as a shell exit status: -N (killed by signal N) -> 128 + N."""
    if code < 0:
        return min(255, 128 - code)
    return code & 0xFF if code > 255 else code


def run_exit_status(task: Task) -> int:
    """The exit status of ``hatoba run --follow`` for a task that has stopped."""
    if task.stop_code == StopCode.TASK_FAILED_TO_START:
        return CANNOT_START
    if task.stop_code == StopCode.TASK_TIMED_OUT:
        return TIMED_OUT
    code = task.exit_code
    if code is None:
        return LOST
    return process_exit_status(code)


def start_exit_status(task: Task) -> int:
    """The exit status of ``hatoba run`` without ``--follow`` once the task is RUNNING or
    STOPPED: only a failure to start is an error; the program's own outcome is not awaited."""
    if task.last_status == LastStatus.STOPPED and task.stop_code == StopCode.TASK_FAILED_TO_START:
        return CANNOT_START
    return 0


def outcome_message(task: Task) -> str | None:
    """A line for stderr explaining a hatoba-made exit status, or None for a passthrough."""
    reason = task.stopped_reason or "no reason recorded"
    if task.stop_code == StopCode.TASK_FAILED_TO_START:
        return f"task failed to start: {reason}"
    if task.stop_code == StopCode.TASK_TIMED_OUT:
        return f"task timed out: {reason}"
    if task.exit_code is None:
        return f"task stopped without an exit code ({task.stop_code or 'no stop code'}): {reason}"
    return None
