"""``hatoba node`` and ``hatoba run``'s placement options end to end against a real server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.cli.test_cli_e2e import env_for, hatoba, served

__all__ = ["served"]


def test_node_list_json_and_describe(served: Path) -> None:
    listed = hatoba(served, "node", "list", "-o", "json")
    assert listed.returncode == 0, listed.stderr.decode()
    (node,) = json.loads(listed.stdout)
    assert node["status"] == "ACTIVE" and node["runningTasksCount"] >= 0
    assert {"os", "arch", "hostname"} <= set(node["attributes"])
    table = hatoba(served, "node", "list")
    assert node["nodeId"] in table.stdout.decode() and "ACTIVE" in table.stdout.decode()
    shown = hatoba(served, "node", "describe", node["nodeId"])
    assert shown.returncode == 0 and "attributes" in shown.stdout.decode()
    missing = hatoba(served, "node", "describe", "node-nope")
    assert missing.returncode == 1 and "node node-nope not found" in missing.stderr.decode()


def test_drain_then_activate(served: Path) -> None:
    (node,) = json.loads(hatoba(served, "node", "list", "-o", "json").stdout)
    node_id = node["nodeId"]
    try:
        drained = hatoba(served, "node", "drain", node_id, "-o", "json")
        assert drained.returncode == 0, drained.stderr.decode()
        assert json.loads(drained.stdout)["status"] == "DRAINING"
        refused = hatoba(served, "run", "job")
        assert refused.returncode == 125
        assert "INACTIVE_NODE on 1 node" in refused.stderr.decode()
    finally:
        activated = hatoba(served, "node", "activate", node_id)
    assert activated.returncode == 0 and "ACTIVE" in activated.stdout.decode()
    ran = hatoba(served, "run", "job", "-f", "--constraint", "attribute:os exists",
                 "--strategy", "binpack:cpu", "--strategy", "spread:attribute:os")  # fmt: skip
    assert ran.returncode == 0, ran.stderr.decode()
    assert ran.stdout == b"default\n"


def test_run_placement_options_errors(served: Path) -> None:
    unmet = hatoba(served, "run", "job", "--constraint", "attribute:rack == r9")
    assert unmet.returncode == 125 and "CONSTRAINT:memberOf" in unmet.stderr.decode()
    bad = hatoba(served, "run", "job", "--strategy", "binpack:disk", "--constraint", "nodeId ~")
    assert bad.returncode == 1
    err = bad.stderr.decode()
    assert "placementStrategy[0].field" in err and "placementConstraints[0].expression" in err


def test_bad_node_attributes_config_is_one_clear_error(served: Path) -> None:
    env = env_for(served) | {"HATOBA_NODE_ATTRIBUTES": "rack"}
    done = subprocess.run(
        [sys.executable, "-m", "hatoba.cli.main", "node", "list"],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.decode().strip() == (
        "error: HATOBA_NODE_ATTRIBUTES: bad item 'rack': expected NAME=VALUE"
    )
