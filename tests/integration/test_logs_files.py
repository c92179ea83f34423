"""Files a container writes, tailed into its logs through an application's own rotation."""

from __future__ import annotations

from pathlib import Path

import pytest

from hatoba.api.services import ApiServices
from tests.integration.conftest import container, run_to_end
from tests.integration.logs_support import api_logs, data

pytestmark = pytest.mark.timeout(120)

ROTATING = """
import logging, logging.handlers, time
handler = logging.handlers.RotatingFileHandler("log/app.log", maxBytes=20000, backupCount=8)
log = logging.getLogger("app")
log.addHandler(handler)
log.setLevel(logging.INFO)
for i in range(3000):  # ~100 KB a second: a rotation every ~200 ms, as often as we poll
    log.info("%05d %s", i, "r" * 90)
    if i % 10 == 9:
        time.sleep(0.01)
print("done")
"""


async def test_rotated_app_log_is_captured_whole_and_in_order(
    cp: ApiServices, tmp_path: Path
) -> None:
    (tmp_path / "log").mkdir()
    app = container(
        "app",
        ["python3", "-c", ROTATING],
        workingDirectory=str(tmp_path),
        logFiles=[{"path": "log/app.log"}],
    )
    task = await run_to_end(cp, "rotating", [app], timeout=60)
    assert task.container("app").exit_code == 0
    got = await api_logs(cp, task.task_id, stream="file")
    assert {o["stream"] for o in got} == {"file:app.log"}
    assert [data(o) for o in got] == [b"%05d " % i + b"r" * 90 for i in range(3000)]
    assert len(list((tmp_path / "log").iterdir())) > 5  # it did rotate


async def test_glob_multiline_per_file_and_an_unterminated_last_line(
    cp: ApiServices, tmp_path: Path
) -> None:
    script = (
        "mkdir -p logs; printf 'E one\\n  detail\\nE two\\n' > logs/a.log; "
        "printf 'b1\\nb2 no newline' > logs/b.log; echo stdout"
    )
    app = container(
        "app",
        script,
        workingDirectory=str(tmp_path),
        logFiles=[{"path": "logs/*.log", "tag": "w", "multilineStart": "^E "}],
    )
    task = await run_to_end(cp, "globbed", [app])
    got = await api_logs(cp, task.task_id, stream="file")
    by = {}
    for o in got:
        by.setdefault(o["stream"], []).append((data(o), o.get("eol", True)))
    assert by == {
        "file:w/a.log": [(b"E one\n  detail", True), (b"E two", True)],
        "file:w/b.log": [(b"b1", True), (b"b2 no newline", False)],  # none starts a record
    }
