"""``hatoba diff|apply|up`` end to end: a real server, real tasks, the app file on disk.

Each test uses its own families and service names, so they share one server.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.cli.test_cli_e2e import env_for, hatoba, served

from hatoba.cli.app_cmd import shut_down
from hatoba.client import HatobaClient, running_server
from hatoba.client.apply import Steadiness, steadiness
from hatoba.model.layout import DataLayout
from hatoba.model.service import Deployment, DeploymentStatus, RolloutState, Service

__all__ = ["served"]

SLEEPER = '[python3, -c, "import time; time.sleep(30)"]'
NOW = datetime(2025, 1, 1, tzinfo=UTC)
MIGRATE = (
    """[python3, -c, "import os, sys; print('migrating'); sys.exit(int(os.environ['FAIL']))"]"""
)


def app_file(tmp_path: Path, prefix: str, *, desired: int = 2, extra: str = "") -> Path:
    path = tmp_path / "hatoba.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            name: {prefix}
            parameters:
              /{prefix}/db: {{type: String, value: "${{HATOBA_APP_DIR}}/{prefix}.db"}}
              /{prefix}/password: {{type: SecureString, value: "${{PW:-hunter2}}"}}
            taskDefinitions:
              {prefix}-api:
                cpu: "64"
                memory: "64"
                containerDefinitions:
                  - name: web
                    command: {SLEEPER}
                    stopTimeout: 2
                    environment: [{{name: MODE, value: "${{MODE:-prod}}"}}]
              {prefix}-migrate:
                containerDefinitions:
                  - name: m
                    command: {MIGRATE}
                    environment: [{{name: FAIL, value: "${{FAIL:-0}}"}}]
            services:
              {prefix}-api: {{taskDefinition: {prefix}-api, desiredCount: {desired}}}
            beforeDeploy:
              - {{taskDefinition: {prefix}-migrate, timeoutSeconds: 60}}
            {extra}"""
        )
    )
    return path


def run(
    home: Path, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    if not env and cwd is None:
        return hatoba(home, *args)
    return subprocess.run(
        [sys.executable, "-m", "hatoba.cli.main", *args],
        env={**env_for(home), **(env or {})},
        cwd=cwd,
        capture_output=True,
        timeout=90,
        check=False,
    )


@pytest.fixture
def client(served: Path) -> Iterator[HatobaClient]:
    endpoint = running_server(DataLayout(served))
    assert endpoint is not None
    with HatobaClient(endpoint.url, endpoint.token) as c:
        yield c


def diff_json(home: Path, path: Path, **env: str) -> tuple[int, list[dict[str, object]]]:
    done = run(home, "diff", "-f", str(path), "-o", "json", env=env)
    assert done.returncode in (0, 2), done.stderr.decode()
    return done.returncode, json.loads(done.stdout)


def actions(items: list[dict[str, object]]) -> dict[str, object]:
    return {f"{i['kind']} {i['name']}": i["action"] for i in items}


def test_apply_creates_everything_then_is_a_no_op(served: Path, tmp_path: Path, client):
    path = app_file(tmp_path, "aa")
    code, items = diff_json(served, path)
    assert code == 2
    assert set(actions(items).values()) == {"create"}

    done = run(served, "apply", "-f", str(path), "--wait")
    err = done.stderr.decode()
    assert done.returncode == 0, err
    assert "registered aa-api:1" in err and "beforeDeploy[0]: aa-migrate:1 exited 0" in err
    assert "service aa-api: steady" in err
    assert "hunter2" not in done.stdout.decode() + err
    service = client.describe_service("aa-api")
    assert (service.task_definition, service.desired_count) == ("aa-api:1", 2)
    assert service.running_count == 2
    view = client.request("GET", "/v1/parameters/aa/db")
    assert view["value"] == f"{tmp_path}/aa.db"

    again = run(served, "apply", "-f", str(path), "-o", "json")
    assert again.returncode == 0, again.stderr.decode()
    result = json.loads(again.stdout)
    assert result["summary"] == {"create": 0, "update": 0, "unchanged": 5}
    assert result["registered"] == {} and result["beforeDeploy"] == []
    assert client.list_task_definitions(family="aa-api")[-1].revision == 1
    assert diff_json(served, path)[0] == 0
    plain = run(served, "diff", "-f", str(path))
    assert plain.returncode == 0 and b"No changes (5 unchanged)." in plain.stdout


def test_drift_changes_and_secrets_show_in_diff(served: Path, tmp_path: Path, client):
    path = app_file(tmp_path, "bb", desired=1)
    assert run(served, "apply", "-f", str(path)).returncode == 0
    client.scale_service("bb-api", 3)  # by hand

    code, items = diff_json(served, path, PW="changed-password")
    assert code == 2
    by_name = {i["name"]: i for i in items}
    service = next(i for i in items if i["kind"] == "service")
    assert service["action"] == "update"
    assert service["changes"] == [{"path": "desiredCount", "old": 3, "new": 1}]
    secret = by_name["/bb/password"]
    assert secret["changes"] == [{"path": "value", "old": "(secret)", "new": "(secret changed)"}]
    human = run(served, "diff", "-f", str(path), env={"PW": "changed-password"})
    assert human.returncode == 2
    assert b"desiredCount: 3 \xe2\x86\x92 1" in human.stdout
    assert b"changed-password" not in human.stdout + human.stderr

    fixed = run(served, "apply", "-f", str(path))
    assert fixed.returncode == 0, fixed.stderr.decode()
    assert b"service bb-api: updated (desiredCount)" in fixed.stderr
    assert client.describe_service("bb-api").desired_count == 1
    assert diff_json(served, path)[0] == 0


def test_changed_task_definition_rolls_the_service(served: Path, tmp_path: Path, client):
    path = app_file(tmp_path, "cc", desired=1)
    assert run(served, "apply", "-f", str(path)).returncode == 0
    done = run(served, "apply", "-f", str(path), "--wait", env={"MODE": "staging"})
    err = done.stderr.decode()
    assert done.returncode == 0, err
    assert "registered cc-api:2" in err and "service cc-api: updated (taskDefinition)" in err
    assert "cc-migrate" in err  # a deploy runs the beforeDeploy task again
    assert client.describe_service("cc-api").task_definition == "cc-api:2"
    assert b"containerDefinitions[0].environment[0].value" in done.stdout


def test_a_bad_file_changes_nothing(served: Path, tmp_path: Path, client):
    path = app_file(
        tmp_path,
        "dd",
        extra="servces: {}\n",
    )
    text = path.read_text().replace('memory: "64"', "memory: lots")
    path.write_text(text)
    done = run(served, "apply", "-f", str(path))
    err = done.stderr.decode()
    assert done.returncode == 1
    assert "nothing was changed" in err
    memory_line = text.splitlines().index("    memory: lots") + 1
    assert f"{path}:{memory_line}: taskDefinitions.dd-api.memory: must be MiB" in err
    assert "servces: unknown top-level key; did you mean 'services'?" in err
    assert "Traceback" not in err
    assert run(served, "diff", "-f", str(path)).returncode == 1

    # valid on its own, but naming what the server does not have: still nothing written
    path = app_file(tmp_path, "dd", extra="")
    path.write_text(path.read_text().replace("taskDefinition: dd-migrate", "taskDefinition: nope"))
    done = run(served, "apply", "-f", str(path))
    assert done.returncode == 1
    assert b"beforeDeploy[0].taskDefinition: no ACTIVE revision" in done.stderr
    assert client.list_task_definitions(family="dd-api") == []
    assert [s.service_name for s in client.list_services() if s.service_name == "dd-api"] == []
    missing = client.request("GET", "/v1/parameters", params={"path": "/dd"})
    assert missing["parameters"] == []


def test_failing_before_deploy_aborts_before_services_change(served: Path, tmp_path: Path, client):
    path = app_file(tmp_path, "ee", desired=1)
    assert run(served, "apply", "-f", str(path)).returncode == 0
    path.write_text(path.read_text().replace("desiredCount: 1", "desiredCount: 2"))
    done = run(served, "apply", "-f", str(path), env={"FAIL": "3", "MODE": "next"})
    err = done.stderr.decode()
    assert done.returncode == 1, err
    assert "exited 3" in err and "no service was changed" in err
    assert "| migrating" in err  # its output's tail
    service = client.describe_service("ee-api")
    assert (service.task_definition, service.desired_count) == ("ee-api:1", 1)
    # the services' changes are still pending
    code, items = diff_json(served, path, FAIL="0", MODE="next")
    assert code == 2
    assert actions(items)["service ee-api"] == "update"


JOBS_FILE = """\
name: jj
taskDefinitions:
  jj-report:
    containerDefinitions:
      - {name: r, command: [python3, -c, "print('report')"]}
jobs:
  jj-nightly:
    taskDefinition: jj-report
    schedule: "${SCHEDULE:-cron(0 2 * * ? *)}"
    timezone: Asia/Tokyo
    retry: {maxAttempts: 2, retryOnFailure: true}
    chain: {onFailure: [jj-alert]}
  jj-alert: {taskDefinition: jj-report}
"""


def test_jobs_are_applied_after_services_and_drift_shows(served: Path, tmp_path: Path, client):
    path = tmp_path / "hatoba.yaml"
    path.write_text(JOBS_FILE)
    code, items = diff_json(served, path)
    assert code == 2
    assert [f"{i['kind']} {i['name']}" for i in items] == [
        "taskDefinition jj-report",
        "job jj-alert",  # chained to: created first
        "job jj-nightly",
    ]
    done = run(served, "apply", "-f", str(path))
    err = done.stderr.decode()
    assert done.returncode == 0, err
    assert "job jj-nightly: created (cron(0 2 * * ? *), Asia/Tokyo)" in err
    nightly = client.describe_job("jj-nightly")
    assert (nightly.task_definition, nightly.timezone) == ("jj-report", "Asia/Tokyo")
    assert nightly.chain.on_failure == ["jj-alert"] and nightly.retry.max_attempts == 2
    assert diff_json(served, path)[0] == 0

    client.enable_job("jj-nightly", enabled=False)  # by hand
    code, items = diff_json(served, path, SCHEDULE="rate(1 hour)")
    assert code == 2
    (job,) = [i for i in items if i["name"] == "jj-nightly"]
    assert job["action"] == "update"
    assert job["changes"] == [
        {"path": "schedule", "old": "cron(0 2 * * ? *)", "new": "rate(1 hour)"},
        {"path": "enabled", "old": False, "new": True},
    ]
    fixed = run(served, "apply", "-f", str(path), "-o", "json", env={"SCHEDULE": "rate(1 hour)"})
    assert fixed.returncode == 0, fixed.stderr.decode()
    assert json.loads(fixed.stdout)["summary"] == {"create": 0, "update": 1, "unchanged": 2}
    nightly = client.describe_job("jj-nightly")
    assert (nightly.schedule, nightly.enabled) == ("rate(1 hour)", True)

    # a bad job: every problem with its line, nothing changed
    path.write_text(
        JOBS_FILE.replace("timezone: Asia/Tokyo", "timezone: Asia/Tokio").replace(
            "jj-alert: {taskDefinition: jj-report}", "jj-alert: {taskDefinition: jj-report, x: 1}"
        )
    )
    done = run(served, "apply", "-f", str(path), env={"SCHEDULE": "cron(0 25 * * ? *)"})
    err = done.stderr.decode()
    assert done.returncode == 1 and "nothing was changed" in err
    assert f"{path}:9: jobs.jj-nightly.schedule: cron hours '25'" in err
    assert f"{path}:10: jobs.jj-nightly.timezone: timezone 'Asia/Tokio'" in err
    assert f"{path}:13: jobs.jj-alert.x: unknown field" in err
    assert client.describe_job("jj-nightly").schedule == "rate(1 hour)"


SCALING_FILE = """\
name: ss
taskDefinitions:
  ss-worker:
    cpu: "32"
    memory: "32"
    containerDefinitions:
      - {name: w, command: [python3, -c, "import time; time.sleep(30)"], stopTimeout: 2}
services:
  ss-worker:
    taskDefinition: ss-worker
    scaling:
      minCapacity: 1
      maxCapacity: 3
      policies:
        - policyName: backlog
          policyType: TargetTrackingScaling
          targetTrackingConfiguration:
            metric: {redisList: {url: "${QUEUE_URL:-redis://127.0.0.1:6379/0}", key: ss-never}}
            targetValue: ${PER_TASK:-10}
            scaleInStabilizationSeconds: 5
"""


def test_scaling_is_applied_checked_by_the_server_and_removed(served: Path, tmp_path: Path, client):
    path = tmp_path / "hatoba.yaml"
    path.write_text(SCALING_FILE)
    code, items = diff_json(served, path)
    assert code == 2 and actions(items)["scaling ss-worker"] == "create"
    done = run(served, "apply", "-f", str(path))
    err = done.stderr.decode()
    assert done.returncode == 0, err
    assert "scaling ss-worker: created (min 1, max 3, policy backlog)" in err
    desc = client.describe_scaling("ss-worker")
    assert (desc.scalable_target.min_capacity, desc.scalable_target.max_capacity) == (1, 3)
    assert [p.policy_name for p in desc.policies] == ["backlog"]
    assert client.describe_service("ss-worker").desired_count == 1  # minCapacity
    client.scale_service("ss-worker", 2)  # the autoscaler's to change, not the file's
    assert diff_json(served, path)[0] == 0

    # what only the server knows (the metric spec): every problem at its line, nothing changed
    done = run(served, "apply", "-f", str(path), env={"QUEUE_URL": "http://nope", "PER_TASK": "5"})
    err = done.stderr.decode()
    assert done.returncode == 1 and "nothing was changed" in err, err
    line = SCALING_FILE.splitlines().index(
        '            metric: {redisList: {url: "${QUEUE_URL:-redis://127.0.0.1:6379/0}", '
        "key: ss-never}}"
    )
    where = f"{path}:{line + 1}: services.ss-worker.scaling.policies[0]"
    assert f"{where}.targetTrackingConfiguration.metric.redisList.url: " in err, err
    tt = client.describe_scaling("ss-worker").policies[0].target_tracking_configuration
    assert tt is not None and tt.target_value == 10

    done = run(served, "apply", "-f", str(path), env={"PER_TASK": "5"})
    assert done.returncode == 0, done.stderr.decode()
    assert "scaling ss-worker: updated (policy backlog)" in done.stderr.decode()
    tt = client.describe_scaling("ss-worker").policies[0].target_tracking_configuration
    assert tt is not None and tt.target_value == 5

    # no scaling: in the file: the server's goes, and the file's count is back
    path.write_text(SCALING_FILE.split("    scaling:", maxsplit=1)[0] + "    desiredCount: 1\n")
    code, items = diff_json(served, path)
    assert code == 2 and actions(items)["scaling ss-worker"] == "update"
    done = run(served, "apply", "-f", str(path))
    assert done.returncode == 0 and b"scaling ss-worker: updated (deregistered)" in done.stderr
    assert all(t.service_name != "ss-worker" for t in client.list_scalable_targets())

    # up's Ctrl-C: autoscaling stops first, or it would bring the service back to min
    path.write_text(SCALING_FILE)
    assert run(served, "apply", "-f", str(path)).returncode == 0
    assert shut_down(client, ["ss-worker"]) == 0
    assert all(t.service_name != "ss-worker" for t in client.list_scalable_targets())
    assert client.describe_service("ss-worker").desired_count == 0
    client.delete_service("ss-worker", force=True)


def test_diff_help_documents_exit_codes(served: Path):
    done = run(served, "diff", "--help")
    assert done.returncode == 0
    assert b"0 no changes, 2 changes" in done.stdout


def test_up_applies_watches_and_stops_on_ctrl_c(served: Path, tmp_path: Path, client):
    app_file(tmp_path, "ff", desired=1)
    proc = subprocess.Popen(
        [sys.executable, "-m", "hatoba.cli.main", "up"],
        env=env_for(served),
        cwd=tmp_path,  # the default file: ./hatoba.yaml
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if client.describe_service("ff-api").running_count == 1:
                    break
            except Exception:
                pass
            time.sleep(0.2)
        else:
            pytest.fail("the service did not start")
        time.sleep(1.5)  # a refresh or two of the live table
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.decode()
    assert b"stopping services\xe2\x80\xa6 (Ctrl-C again to leave them running)" in err
    assert b"ff-api" in out and b"ROLLOUT" in out
    assert client.describe_service("ff-api").desired_count == 0
    assert client.service_tasks("ff-api", live_only=True) == []


# -- apply --wait's notion of steady (pure) ---------------------------------------------------


def _service(*deployments: Deployment, running: int = 2, desired: int = 2) -> Service:
    return Service(
        service_name="s",
        task_definition=deployments[-1].task_definition,
        desired_count=desired,
        running_count=running,
        deployments=list(deployments),
        created_at=NOW,
        updated_at=NOW,
    )


def _deployment(
    td: str, state: RolloutState, status: DeploymentStatus = DeploymentStatus.PRIMARY, **kw: str
) -> Deployment:
    return Deployment(
        id=f"hd-{td}",
        status=status,
        task_definition=td,
        rollout_state=state,
        created_at=NOW,
        updated_at=NOW,
        **kw,
    )


def test_steadiness():
    done = _deployment("a:2", RolloutState.COMPLETED)
    assert steadiness(_service(done), "a:2").state == "steady"
    assert steadiness(_service(done, running=1)).state == "waiting"
    old = _deployment("a:1", RolloutState.COMPLETED, DeploymentStatus.ACTIVE)
    assert steadiness(_service(old, done)).state == "waiting"  # old tasks still draining
    rolling = _deployment("a:2", RolloutState.IN_PROGRESS)
    assert steadiness(_service(rolling), "a:2").state == "waiting"
    failed = _deployment("a:2", RolloutState.FAILED, rollout_state_reason="circuit breaker")
    assert steadiness(_service(failed), "a:2") == Steadiness("failed", "circuit breaker")
    rolled_back = _deployment("a:1", RolloutState.COMPLETED, rollback_of="hd-a:2")
    outcome = steadiness(_service(rolled_back), "a:2")
    assert outcome.state == "failed" and "rolled back to a:1" in outcome.reason
