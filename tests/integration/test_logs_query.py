"""Querying logs: a task, a service (every task, interleaved by time, new ones followed), a
job's tasks; filters by time, regex, container, stream; the last N lines."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from hatoba.api.app import create_app
from hatoba.api.log_routes import resolve_target
from hatoba.api.services import ApiServices
from hatoba.controllers.tasks import RunTaskRequest
from hatoba.logs.query import LogQuery
from hatoba.logs.reader import TaskLogLine
from hatoba.model.service import ServiceSpec
from hatoba.model.task import LastStatus
from tests.integration.conftest import container, run_to_end
from tests.integration.logs_support import api_logs, data

pytestmark = pytest.mark.timeout(120)

TICKER = 'i=0; while true; do echo "tick $i $HATOBA_TASK_ID"; i=$((i+1)); sleep 0.05; done'


async def live_tasks(cp: ApiServices, name: str, n: int) -> list[str]:
    deadline = time.monotonic() + 30
    while True:
        tasks = [t for t in await cp.services.tasks(name) if t.last_status == LastStatus.RUNNING]
        if len(tasks) == n:
            return [t.task_id for t in tasks]
        assert time.monotonic() < deadline, f"{name}: {len(tasks)} of {n} running"
        await asyncio.sleep(0.1)


async def test_service_logs_interleave_its_tasks_and_follow_new_ones(cp: ApiServices) -> None:
    await cp.task_definitions.register(
        {"family": "ticker", "containerDefinitions": [container("main", TICKER, stopTimeout=1)]}
    )
    await cp.services.create(
        ServiceSpec(service_name="ticker", task_definition="ticker", desired_count=2)
    )
    first = set(await live_tasks(cp, "ticker", 2))
    await asyncio.sleep(0.5)
    got = await api_logs(cp, "service/ticker")
    assert {o["taskId"] for o in got} == first
    assert all(data(o).endswith(o["taskId"].encode()) for o in got)
    stamps = [o["timestampNs"] for o in got]
    assert stamps == sorted(stamps)  # interleaved by time

    seen: list[TaskLogLine] = []
    refresh, keep, _ = await resolve_target(cp, "service/ticker")
    query = LogQuery(cp.layout, refresh_interval=0.2)

    async def follow() -> None:
        async for batch in query.stream(refresh, follow=True, keep_following=keep):
            seen.extend(batch)

    follower = asyncio.create_task(follow())
    await cp.services.scale("ticker", 3)
    third = set(await live_tasks(cp, "ticker", 3)) - first
    deadline = time.monotonic() + 10
    while not any(line.task_id in third for line in seen):
        assert time.monotonic() < deadline, "the new task's lines never came"
        await asyncio.sleep(0.1)
    follower.cancel()
    # scaled to 0, the stopped tasks' logs are still there, every task's
    await cp.services.scale("ticker", 0)
    deadline = time.monotonic() + 30
    while await cp.services.tasks("ticker"):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    got = await api_logs(cp, "service/ticker", tail=5)
    assert len(got) == 5
    assert {o["taskId"] for o in await api_logs(cp, "service/ticker")} == first | third


async def test_job_target_reads_every_task_of_the_group(cp: ApiServices) -> None:
    await cp.task_definitions.register(
        {"family": "nightly", "containerDefinitions": [container("main", "echo $HATOBA_TASK_ID")]}
    )
    ids = []
    for _ in range(2):
        res = await cp.tasks.run(RunTaskRequest(task_definition="nightly", group="job:nightly"))
        ids.append(res.tasks[0].task_id)
        await cp.tasks.wait_for(ids[-1], LastStatus.STOPPED, 20)
    await run_to_end(cp, "nightly", [container("main", "echo not in the job")])
    got = await api_logs(cp, "job/nightly")
    assert [(o["taskId"], data(o)) for o in got] == [(i, i.encode()) for i in ids]


FILTERS = r"""
import sys, time
for i in range(6):
    print("out %d" % i, flush=True)
    print("err %d" % i, file=sys.stderr, flush=True)
    open("app.log", "a").write("file %d\n" % i)
    time.sleep(0.3)
"""


async def test_filters_grep_time_container_stream_tail(cp: ApiServices, tmp_path: Any) -> None:
    app = container(
        "app",
        ["python3", "-c", FILTERS],
        workingDirectory=str(tmp_path),
        logFiles=[{"path": "app.log"}],
    )
    side = container("side", "echo side; sleep 0.2", essential=False)
    task = await run_to_end(cp, "filters", [app, side])
    everything = await api_logs(cp, task.task_id)
    streams = {o["stream"] for o in everything}
    assert streams == {"stdout", "stderr", "file:app.log"}

    def texts(lines: list[dict[str, Any]]) -> list[str]:
        return [data(o).decode() for o in lines]

    assert texts(await api_logs(cp, task.task_id, grep=r"^err [24]$")) == ["err 2", "err 4"]
    assert texts(await api_logs(cp, task.task_id, container="side")) == ["side"]
    assert texts(await api_logs(cp, task.task_id, stream="stderr", tail=2)) == ["err 4", "err 5"]
    files = await api_logs(cp, task.task_id, stream="file")
    assert texts(files) == [f"file {i}" for i in range(6)]
    assert texts(await api_logs(cp, task.task_id, stream="file:app.log", tail=1)) == ["file 5"]
    outs = [o for o in everything if o["stream"] == "stdout" and o["container"] == "app"]
    middle = outs[2]["timestampNs"], outs[4]["timestampNs"]
    got = await api_logs(
        cp, task.task_id, stream="stdout", container="app", since=middle[0], until=middle[1]
    )
    assert texts(got) == ["out 2", "out 3", "out 4"]
    assert await api_logs(cp, task.task_id, since="1h", grep="out 5") == [outs[5]]
    assert await api_logs(cp, task.task_id, until="2000-01-01T00:00:00Z") == []


async def test_bad_queries_name_the_parameter(cp: ApiServices) -> None:
    task = await run_to_end(cp, "one", [container("main", "echo hi")])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(cp)),
        base_url="http://hatoba",
        headers={"Authorization": f"Bearer {cp.token}"},
    ) as http:
        for params, field in [
            ({"grep": "("}, "grep"),
            ({"stream": "stdin"}, "stream"),
            ({"since": "yesterday"}, "since"),
            ({"container": "nope"}, "container"),
        ]:
            r = await http.get("/v1/logs", params={"target": task.task_id, **params})
            assert r.status_code == 422, r.text
            assert r.json()["error"]["errors"][0]["path"] == field
        r = await http.get("/v1/logs", params={"target": "service/nothing"})
        assert r.status_code == 404 and "nothing" in r.text
        r = await http.get("/v1/logs", params={"target": "zzzzzzzz"})
        assert r.status_code == 404
