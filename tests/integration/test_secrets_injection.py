"""Secrets from the parameter store reach real processes as environment variables."""

from __future__ import annotations

from pathlib import Path

from hatoba.api.services import ApiServices
from hatoba.model.access import Principal, Role
from hatoba.model.params import Selector
from hatoba.model.task import StopCode
from tests.integration.conftest import container, logs_of, run_to_end

ROOT = Principal(name="root", role=Role.ADMIN, can_decrypt=True)
ARN = "arn:aws:ssm:eu-west-1:123456789012:parameter"


async def seed(cp: ApiServices) -> None:
    p = cp.parameters
    await p.put(ROOT, "/app/db/password", "SecureString", "pw-version-1")
    await p.put(ROOT, "/app/db/password", "SecureString", "pw-version-2", overwrite=True)
    await p.label(ROOT, "/app/db/password", 1, ["stable"])
    await p.put(ROOT, "/app/db/host", "String", "db.internal")
    await p.put(ROOT, "/app/hosts", "StringList", "a,b")


async def test_secrets_by_name_version_label_and_arn(cp: ApiServices, tmp_path: Path) -> None:
    await seed(cp)
    env_file = tmp_path / "app.env"
    env_file.write_text("FROM_FILE=file-value\nLATEST=overridden-by-secret\n")
    refs = {
        "LATEST": "/app/db/password",
        "V1": "/app/db/password:1",
        "STABLE": "/app/db/password:stable",
        "BY_ARN": f"{ARN}/app/db/password:2",
        "HOST": "/app/db/host",
        "HOSTS": f"{ARN}/app/hosts",
    }
    line = "|".join(f"${k}" for k in [*refs, "FROM_FILE"])
    task = await run_to_end(
        cp,
        "inject",
        [
            container(
                "app",
                f'echo "{line}"',
                secrets=[{"name": k, "valueFrom": v} for k, v in refs.items()],
                environmentFiles=[{"type": "file", "value": str(env_file)}],
            )
        ],
    )
    assert task.exit_code == 0, task.stopped_reason
    out = b"".join(data for _, _, data in await logs_of(cp, task)).decode()
    expected = "pw-version-2|pw-version-1|pw-version-1|pw-version-2|db.internal|a,b|file-value"
    assert out.strip() == expected


async def test_missing_parameter_or_version_stops_the_task(cp: ApiServices) -> None:
    await seed(cp)
    secrets = [
        {"name": "DB_PASSWORD", "valueFrom": "/prod/db/password"},
        {"name": "OLD", "valueFrom": "/app/db/password:9"},
        {"name": "FINE", "valueFrom": "/app/db/password"},
    ]
    task = await run_to_end(cp, "missing", [container("app", "true", secrets=secrets)])
    assert task.stop_code == StopCode.TASK_FAILED_TO_START
    reason = task.stopped_reason or ""
    assert reason.startswith("ResourceInitializationError: unable to retrieve secret")
    assert "parameter /prod/db/password (for DB_PASSWORD) not found" in reason
    assert "parameter /app/db/password version 9 (for OLD) not found" in reason
    assert "pw-version" not in reason


async def test_tasks_after_key_rotation_get_the_right_value(cp: ApiServices) -> None:
    await seed(cp)
    rotation = await cp.parameters.rotate_key()
    assert rotation.reencrypted == 2 and len(rotation.retired_key_ids) == 1
    await cp.parameters.put(ROOT, "/app/new", "SecureString", "after-rotation")
    secrets = [
        {"name": "A", "valueFrom": "/app/db/password:stable"},
        {"name": "B", "valueFrom": "/app/new"},
    ]
    task = await run_to_end(cp, "rotated", [container("app", 'echo "$A $B"', secrets=secrets)])
    out = b"".join(data for _, _, data in await logs_of(cp, task)).decode()
    assert out.strip() == "pw-version-1 after-rotation"
    assert await cp.parameters.value_of(Selector("/app/db/password", 2)) == "pw-version-2"
