"""Jobs over the API on a real control plane (its job scheduler launches real processes):
CRUD, next fire times in a DST zone, runs started now and followed, cancel, history and
events, validation naming each field, 404/409, roles and ``job:`` scopes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI

from hatoba.api.services import ApiServices
from hatoba.model.errors import NotFound
from tests.api.conftest import ClientFor, new_token
from tests.api.test_access import mutating_routes

pytestmark = pytest.mark.timeout(120)


def shell(family: str, script: str) -> dict[str, Any]:
    return {
        "family": family,
        "containerDefinitions": [
            {"name": "main", "command": script, "shell": True, "stopTimeout": 1}
        ],
    }


@pytest.fixture(autouse=True)
async def no_runs_left(cp: ApiServices) -> AsyncIterator[None]:
    """Whatever a test leaves running is cancelled (tasks outlive the control plane)."""
    yield
    for job in await cp.jobs.list():
        for run in await cp.store.active_job_runs(job.job_name):
            with contextlib.suppress(NotFound):
                await cp.jobs.cancel_run(run.run_id)


def paths(r: httpx.Response) -> list[str]:
    assert r.status_code == 422, r.text
    body = r.json()["error"]
    assert body["code"] == "ValidationFailed"
    return [e["path"] for e in body["errors"]]


async def register(root: httpx.AsyncClient, family: str, script: str = "true") -> None:
    r = await root.post("/v1/task-definitions", json=shell(family, script))
    assert r.status_code == 200, r.text


async def test_create_list_describe_next_replace_enable_disable_delete(
    root: httpx.AsyncClient,
) -> None:
    await register(root, "report")
    body = {
        "jobName": "nightly",
        "taskDefinition": "report",
        "schedule": "cron(30 2 * * ? *)",
        "timezone": "America/New_York",
        "retry": {"maxAttempts": 3, "retryOnFailure": True},
    }
    r = await root.post("/v1/jobs", json=body)
    assert r.status_code == 200, r.text
    created = r.json()
    assert created["jobName"] == "nightly" and created["enabled"] is True
    assert created["overlapPolicy"] == "Forbid" and created["retry"]["maxAttempts"] == 3
    assert (await root.post("/v1/jobs", json=body)).status_code == 409

    listed = (await root.get("/v1/jobs")).json()["jobs"]
    assert [j["jobName"] for j in listed] == ["nightly"]
    assert (await root.get("/v1/jobs/nightly")).json()["schedule"] == "cron(30 2 * * ? *)"

    r = await root.get("/v1/jobs/nightly/next", params={"n": 4, "after": "2026-03-06T12:00:00Z"})
    assert r.status_code == 200, r.text
    nxt = r.json()
    assert nxt["timezone"] == "America/New_York" and nxt["schedule"] == "cron(30 2 * * ? *)"
    zone = ZoneInfo("America/New_York")
    local = [datetime.fromisoformat(t).astimezone(zone) for t in nxt["fireTimes"]]
    # 2026-03-08 02:30 does not exist in New York (clocks spring forward): skipped
    assert [(t.day, t.hour, t.minute) for t in local] == [
        (7, 2, 30),
        (9, 2, 30),
        (10, 2, 30),
        (11, 2, 30),
    ]
    assert [str(t.utcoffset()) for t in local] == ["-1 day, 19:00:00"] + ["-1 day, 20:00:00"] * 3
    r = await root.get("/v1/jobs/nightly/next", params={"after": "2026-03-07T12:00:00"})
    assert paths(r) == ["after"]

    replaced = {**body, "schedule": "rate(1 day)", "timezone": "UTC"}
    r = await root.put("/v1/jobs/nightly", json=replaced)
    assert r.status_code == 200, r.text
    assert r.json()["schedule"] == "rate(1 day)" and r.json()["retry"]["maxAttempts"] == 3
    r = await root.put("/v1/jobs/nightly", json={**replaced, "jobName": "other"})
    assert paths(r) == ["jobName"]

    assert (await root.post("/v1/jobs/nightly/disable")).json()["enabled"] is False
    assert (await root.get("/v1/jobs/nightly")).json()["enabled"] is False
    assert (await root.post("/v1/jobs/nightly/enable")).json()["enabled"] is True

    r = await root.delete("/v1/jobs/nightly")
    assert r.status_code == 200 and r.json()["jobName"] == "nightly"
    for method, path in [
        ("GET", "/v1/jobs/nightly"),
        ("DELETE", "/v1/jobs/nightly"),
        ("POST", "/v1/jobs/nightly/runs"),
        ("GET", "/v1/jobs/nightly/next"),
        ("GET", "/v1/jobs/nightly/runs"),
        ("GET", "/v1/job-runs/jr-nope"),
        ("POST", "/v1/job-runs/jr-nope/cancel"),
    ]:
        r = await root.request(method, path)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["error"]["code"] == "NotFound"


async def test_validation_names_every_field_at_once(root: httpx.AsyncClient) -> None:
    await register(root, "report")
    r = await root.post(
        "/v1/jobs",
        json={
            "jobName": "bad",
            "taskDefinition": "missing",
            "schedule": "cron(61 * * * ? *)",
            "timezone": "Mars/Olympus",
            "chain": {"onSuccess": ["nope"]},
        },
    )
    got = paths(r)
    assert "taskDefinition" in got and "timezone" in got and "chain.onSuccess[0]" in got
    assert any(p.startswith("schedule") for p in got), got
    messages = " ".join(e["message"] for e in r.json()["error"]["errors"])
    assert "missing" in messages and "nope" in messages
    r = await root.post(
        "/v1/jobs",
        json={
            "jobName": "1bad",
            "taskDefinition": "report",
            "retry": {"maxAttempts": 0},
            "overlapPolicy": "Sometimes",
            "notifications": [{"url": "ftp://x"}],
            "schedul": "rate(1 day)",
        },
    )
    assert set(paths(r)) == {
        "jobName",
        "retry.maxAttempts",
        "overlapPolicy",
        "notifications[0].url",
        "schedul",
    }
    assert (await root.get("/v1/jobs")).json()["jobs"] == []  # nothing was created


async def test_run_now_wait_history_events_and_logs(
    cp: ApiServices, root: httpx.AsyncClient
) -> None:
    await register(root, "flaky", 'echo "try"; exit 3')
    muted = {"jobName": "muted", "taskDefinition": "flaky", "enabled": False}
    assert (await root.post("/v1/jobs", json=muted)).status_code == 200
    body = {
        "jobName": "flaky",
        "taskDefinition": "flaky",
        "retry": {"maxAttempts": 2, "retryOnFailure": True, "backoffSeconds": 0.1},
        "chain": {"onFailure": ["muted"]},
    }
    assert (await root.post("/v1/jobs", json=body)).status_code == 200
    r = await root.post("/v1/jobs/flaky/runs")
    assert r.status_code == 200, r.text
    run = r.json()
    assert run["status"] == "PENDING" and run["trigger"] == "manual"
    run_id = run["runId"]
    started = (await root.get(f"/v1/job-runs/{run_id}/wait", params={"timeout": 20})).json()
    assert started["attempts"][0]["taskId"], started
    r = await root.get(f"/v1/job-runs/{run_id}/wait", params={"finished": "true", "timeout": 30})
    done = r.json()
    assert done["status"] == "FAILED", done
    assert [a["exitCode"] for a in done["attempts"]] == [3, 3]
    assert done["reason"] == "attempt 2 failed: exit code 3"
    assert (await root.get(f"/v1/job-runs/{run_id}")).json() == done
    history = (await root.get("/v1/jobs/flaky/runs", params={"limit": 5})).json()["runs"]
    assert [h["runId"] for h in history] == [run_id]
    r = await root.get("/v1/jobs/flaky/runs", params={"before": run_id})
    assert r.json()["runs"] == []
    events = (await root.get("/v1/jobs/flaky/events")).json()["events"]
    notices = [e for e in events if e["message"] == "chained job muted is disabled; not started"]
    assert len(notices) == 1  # once, when the run ended; not after the retried attempt
    ids = [e["id"] for e in events]
    newer = (await root.get("/v1/jobs/flaky/events", params={"afterId": ids[0]})).json()
    assert newer["events"] == []
    # every attempt's output, through the job's log target
    async with root.stream("GET", "/v1/logs", params={"target": "job/flaky"}) as stream:
        lines = [line async for line in stream.aiter_lines() if line.strip()]
    assert len(lines) == 2 and all('"try"' in line for line in lines)
    # the run's own cancel: a finished run stays as it was
    r = await root.post(f"/v1/job-runs/{run_id}/cancel", json={})
    assert r.status_code == 200 and r.json()["status"] == "FAILED"


async def test_cancel_stops_the_task(cp: ApiServices, root: httpx.AsyncClient) -> None:
    await register(root, "long", "sleep 30")
    assert (
        await root.post("/v1/jobs", json={"jobName": "long", "taskDefinition": "long"})
    ).status_code == 200
    run = (await root.post("/v1/jobs/long/runs")).json()
    started = (await root.get(f"/v1/job-runs/{run['runId']}/wait", params={"timeout": 20})).json()
    task_id = started["attempts"][0]["taskId"]
    r = await root.post(f"/v1/job-runs/{run['runId']}/cancel", json={"reason": "enough"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "CANCELLED" and r.json()["reason"] == "enough"
    task = (await root.get(f"/v1/tasks/{task_id}/wait", params={"timeout": 20})).json()
    assert task["lastStatus"] == "STOPPED"


async def test_delete_refused_while_another_job_chains_to_it(root: httpx.AsyncClient) -> None:
    await register(root, "report")
    for body in (
        {"jobName": "alert", "taskDefinition": "report"},
        {"jobName": "load", "taskDefinition": "report", "chain": {"onFailure": ["alert"]}},
    ):
        assert (await root.post("/v1/jobs", json=body)).status_code == 200
    r = await root.delete("/v1/jobs/alert")
    assert r.status_code == 409 and "load chains to alert" in r.json()["error"]["message"]
    r = await root.put(
        "/v1/jobs/alert",
        json={"jobName": "alert", "taskDefinition": "report", "chain": {"always": ["load"]}},
    )
    assert paths(r) == ["chain.always[0]"] and "cycle" in r.text
    assert (await root.delete("/v1/jobs/load")).status_code == 200
    assert (await root.delete("/v1/jobs/alert")).status_code == 200


async def test_roles_and_job_scopes(root: httpx.AsyncClient, client_for: ClientFor) -> None:
    await register(root, "batch-x")
    await register(root, "web")
    job = {"jobName": "batch-a", "taskDefinition": "batch-x"}
    viewer = client_for(await new_token(root, "v", "viewer"))
    operator = client_for(await new_token(root, "op", "operator"))
    r = await operator.post("/v1/jobs", json=job)
    assert r.status_code == 403 and "deployer" in r.json()["error"]["message"]
    assert (await root.post("/v1/jobs", json=job)).status_code == 200
    assert (await viewer.get("/v1/jobs/batch-a")).status_code == 200
    assert (await viewer.post("/v1/jobs/batch-a/runs")).status_code == 403
    assert (await operator.post("/v1/jobs/batch-a/disable")).status_code == 200
    assert (await operator.post("/v1/jobs/batch-a/enable")).status_code == 200
    assert (await operator.put("/v1/jobs/batch-a", json=job)).status_code == 403
    assert (await operator.delete("/v1/jobs/batch-a")).status_code == 403

    scoped = client_for(
        await new_token(root, "b", "deployer", scopes=["job:batch-*", "family:batch-*"])
    )
    r = await scoped.post("/v1/jobs", json={"jobName": "batch-b", "taskDefinition": "batch-x"})
    assert r.status_code == 200, r.text
    r = await scoped.post("/v1/jobs", json={"jobName": "batch-c", "taskDefinition": "web"})
    assert r.status_code == 403 and "family:web" in r.json()["error"]["message"]
    r = await scoped.post("/v1/jobs", json={"jobName": "other", "taskDefinition": "batch-x"})
    assert r.status_code == 403 and "job:other" in r.json()["error"]["message"]
    assert (await root.post("/v1/jobs", json={"jobName": "w", "taskDefinition": "web"})).is_success
    chained = {"jobName": "batch-d", "taskDefinition": "batch-x", "chain": {"always": ["w"]}}
    r = await scoped.post("/v1/jobs", json=chained)
    assert r.status_code == 403 and "job:w" in r.json()["error"]["message"]
    assert (await scoped.post("/v1/jobs/w/disable")).status_code == 403
    run = (await root.post("/v1/jobs/w/runs")).json()
    r = await scoped.post(f"/v1/job-runs/{run['runId']}/cancel", json={})
    assert r.status_code == 403 and "job:w" in r.json()["error"]["message"]
    r = await scoped.post("/v1/jobs/batch-b/runs")
    assert r.status_code == 200 and r.json()["jobName"] == "batch-b"
    assert (await scoped.get("/v1/jobs")).status_code == 200  # reads are not scoped


async def test_every_job_mutation_needs_a_token_and_a_role(
    cp: ApiServices, app: FastAPI, client_for: ClientFor, root: httpx.AsyncClient
) -> None:
    """The access walk of test_access.py, over the job routes only."""
    routes = [(m, p) for m, p in mutating_routes(app) if p.startswith("/v1/job")]
    assert len(routes) == 7, routes
    await register(root, "abcdef")
    await root.post("/v1/jobs", json={"jobName": "abcdef", "taskDefinition": "abcdef"})
    viewer = client_for(await new_token(root, "viewer", "viewer"))
    before = (await cp.jobs.list(), await cp.store.list_job_runs("abcdef"))
    for client, status in [
        (client_for(None), 401),
        (client_for("hbt_abc_def"), 401),
        (viewer, 403),
    ]:
        for method, path in routes:
            r = await client.request(method, path, json={})
            assert r.status_code == status, (method, path, r.text)
    assert (await cp.jobs.list(), await cp.store.list_job_runs("abcdef")) == before
