"""Jobs on real processes in an in-process control plane: retries until success, a timeout
per attempt, chaining on success and failure, overlap Forbid and Replace on a per-second
schedule, and webhooks delivered to a real HTTP receiver (retried after a 500)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from hatoba.api.services import ApiServices
from hatoba.controllers.job_notify import DeliverySettings
from hatoba.model.job import JobRun, JobSpec, RunStatus, RunTrigger
from hatoba.model.task import LastStatus, StopCode
from tests.controllers.jobs_support import parse_with_seconds
from tests.integration.conftest import container, logs_of

pytestmark = pytest.mark.timeout(90)


async def job(cp: ApiServices, name: str, command: str, **spec: Any) -> None:
    await cp.task_definitions.register(
        {"family": name, "containerDefinitions": [container("main", command, stopTimeout=1)]}
    )
    await cp.jobs.create(JobSpec(job_name=name, task_definition=name, **spec))


async def finished(cp: ApiServices, run: JobRun, timeout: float = 30) -> JobRun:
    done = await cp.jobs.wait_for_run(run.run_id, timeout, finished=True)
    assert not done.active, done
    return done


async def test_fails_twice_then_succeeds_with_retries(cp: ApiServices, tmp_path: Path) -> None:
    counter = tmp_path / "count"
    script = (
        f"n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}; "
        'echo "attempt $n"; [ $n -ge 3 ]'
    )
    await job(
        cp,
        "flaky",
        script,
        retry={"maxAttempts": 3, "retryOnFailure": True, "backoffSeconds": 0.2},
    )
    done = await finished(cp, await cp.jobs.run_now("flaky"))
    assert done.status == RunStatus.SUCCEEDED
    assert [a.exit_code for a in done.attempts] == [1, 1, 0]
    assert len(set(done.task_ids)) == 3
    last = await cp.store.get_task(done.task_ids[-1])
    assert last is not None and last.started_by == done.run_id and last.group == "job:flaky"
    assert await logs_of(cp, last) == [("main", "stdout", b"attempt 3")]


async def test_each_attempt_has_its_timeout(cp: ApiServices) -> None:
    await job(
        cp,
        "slow",
        "sleep 30",
        timeout_seconds=0.5,
        retry={"maxAttempts": 2, "retryOnFailure": True, "backoffSeconds": 0},
    )
    done = await finished(cp, await cp.jobs.run_now("slow"))
    assert done.status == RunStatus.FAILED
    assert done.reason == "attempt 2 failed: timed out"
    assert [a.stop_code for a in done.attempts] == [StopCode.TASK_TIMED_OUT.value] * 2


async def test_chain_on_success_and_on_failure(cp: ApiServices, tmp_path: Path) -> None:
    marker = tmp_path / "alerted"
    await job(cp, "alert", f"echo alerted > {marker}")
    await job(cp, "load", "exit 4", chain={"onFailure": ["alert"]})
    await job(cp, "extract", "true", chain={"onSuccess": ["load"], "onFailure": ["alert"]})
    parent = await finished(cp, await cp.jobs.run_now("extract"))
    assert parent.status == RunStatus.SUCCEEDED

    async def one_run(name: str) -> JobRun:
        for _ in range(300):
            runs = await cp.jobs.history(name)
            if runs:
                return runs[0]
            await asyncio.sleep(0.05)
        raise AssertionError(f"no run of {name}")

    load = await finished(cp, await one_run("load"))
    assert load.trigger == RunTrigger.CHAIN and load.parent_run_id == parent.run_id
    assert load.status == RunStatus.FAILED and load.exit_code == 4
    alert = await finished(cp, await one_run("alert"))
    assert alert.status == RunStatus.SUCCEEDED and alert.parent_run_id == load.run_id
    assert marker.read_text() == "alerted\n"
    assert len(await cp.jobs.history("alert")) == 1  # extract succeeded: only load's failure


@pytest.fixture
def per_second(cp: ApiServices) -> None:
    """Let this control plane take ``every(N)`` (seconds) schedules."""
    assert cp.job_scheduler is not None
    cp.job_scheduler.parse = parse_with_seconds
    cp.jobs.parse = parse_with_seconds


async def wait_runs(cp: ApiServices, name: str, n: int, timeout: float = 20) -> list[JobRun]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        runs = list(reversed(await cp.jobs.history(name, limit=100)))
        if len(runs) >= n:
            return runs
        assert loop.time() < deadline, runs
        await asyncio.sleep(0.05)


@pytest.mark.usefixtures("per_second")
async def test_overlap_forbid_skips_ticks_while_a_run_is_running(cp: ApiServices) -> None:
    await job(cp, "busy", "sleep 30", schedule="every(1)", overlap_policy="Forbid")
    runs = await wait_runs(cp, "busy", 4)
    await cp.jobs.disable("busy")
    first, rest = runs[0], runs[1:]
    assert first.status == RunStatus.RUNNING
    assert all(r.status == RunStatus.SKIPPED for r in rest)
    assert all(r.reason == f"previous run still running ({first.run_id})" for r in rest)
    tasks = await cp.store.list_tasks(group="job:busy")
    assert [t.started_by for t in tasks] == [first.run_id]
    await cp.jobs.cancel_run(first.run_id)


@pytest.mark.usefixtures("per_second")
async def test_overlap_replace_stops_the_running_task(cp: ApiServices) -> None:
    await job(cp, "fresh", "sleep 30", schedule="every(2)", overlap_policy="Replace")
    runs = await wait_runs(cp, "fresh", 2)
    await cp.jobs.disable("fresh")
    new = await cp.jobs.wait_for_run(runs[1].run_id, 10)  # launched after the replacing
    old = await cp.jobs.get_run(runs[0].run_id)
    assert old.status == RunStatus.CANCELLED
    assert old.reason is not None and old.reason.startswith(f"replaced by run {new.run_id}")
    assert new.status == RunStatus.RUNNING
    stopped = await cp.tasks.wait_for(old.task_ids[0], LastStatus.STOPPED, 10)
    assert stopped.stop_code == StopCode.SERVICE_SCHEDULER_INITIATED
    await cp.jobs.cancel_run(new.run_id)


class Receiver:
    """A webhook endpoint: answers 500 to the first ``fail_first`` posts, then 204."""

    def __init__(self, fail_first: int) -> None:
        self.fail_first = fail_first
        self.posts: list[tuple[str, dict[str, Any], int]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                code = 500 if len(outer.posts) < outer.fail_first else 204
                outer.posts.append((self.path, body, code))
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def delivered(self, path: str) -> list[dict[str, Any]]:
        return [body for p, body, code in self.posts if p == path and code == 204]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(fail_first=1)
    r.thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()


async def test_webhooks_are_delivered_and_retried_after_a_500(
    cp: ApiServices, receiver: Receiver
) -> None:
    assert cp.job_scheduler is not None
    cp.job_scheduler.deliveries.settings = DeliverySettings(backoff=0.2)
    events = ["start", "success", "failure"]
    hooks = [
        {"url": f"{receiver.url}/json", "format": "json", "events": events},
        {"url": f"{receiver.url}/slack", "format": "slack", "events": ["failure"]},
    ]
    await job(cp, "ok", "true", notifications=hooks)
    await job(cp, "bad", "exit 7", notifications=hooks)
    ok = await finished(cp, await cp.jobs.run_now("ok"))
    bad = await finished(cp, await cp.jobs.run_now("bad"))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while len(receiver.delivered("/json")) < 4 or len(receiver.delivered("/slack")) < 1:
        assert loop.time() < deadline, receiver.posts
        await asyncio.sleep(0.05)
    assert sum(1 for *_, code in receiver.posts if code == 500) == 1
    got = {(b["job"], b["event"]): b for b in receiver.delivered("/json")}
    assert set(got) == {("ok", "start"), ("ok", "success"), ("bad", "start"), ("bad", "failure")}
    success = got[("ok", "success")]
    assert success["runId"] == ok.run_id and success["status"] == "SUCCEEDED"
    assert success["exitCode"] == 0 and success["taskIds"] == ok.task_ids
    assert success["trigger"] == "manual" and success["attempt"] == 1
    failure = got[("bad", "failure")]
    assert failure["exitCode"] == 7 and failure["runId"] == bad.run_id
    [slack] = receiver.delivered("/slack")
    assert slack["text"].startswith(":x: job *bad*") and "exit code 7" in slack["text"]
    # the failed delivery is visible in the job's events
    first_path, first_body, _ = receiver.posts[0]
    messages = [e.message for e in await cp.jobs.events(first_body["job"])]
    assert any("failed (attempt 1): HTTP 500; retrying" in m for m in messages), messages
    assert first_path in ("/json", "/slack")


async def test_a_dead_endpoint_is_given_up_on_and_says_so_in_events(cp: ApiServices) -> None:
    r = Receiver(fail_first=1000)
    r.thread.start()
    try:
        assert cp.job_scheduler is not None
        cp.job_scheduler.deliveries.settings = DeliverySettings(backoff=0.05, give_up=0.5)
        hooks = [{"url": f"{r.url}/hook", "events": ["success"]}]
        await job(cp, "quiet", "true", notifications=hooks)
        run = await finished(cp, await cp.jobs.run_now("quiet"))
        assert run.status == RunStatus.SUCCEEDED  # the dead endpoint held nothing up
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15
        while True:
            [note] = await cp.store.list_job_notifications("quiet")
            if note.status.value == "FAILED":
                break
            assert loop.time() < deadline, note
            await asyncio.sleep(0.05)
        assert note.attempts >= 2 and note.last_error == "HTTP 500"
        messages = [e.message for e in await cp.jobs.events("quiet")]
        assert any(m.startswith("gave up on the success notification") for m in messages)
        assert all("/hook" not in m for m in messages)  # endpoints shown by host only
    finally:
        r.server.shutdown()
        r.server.server_close()
