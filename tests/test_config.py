"""Settings from the environment: custom node attributes (HATOBA_NODE_ATTRIBUTES)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hatoba.agent.node_agent import describe_this_machine
from hatoba.config import ConfigError, Settings, parse_node_attributes


def test_node_attributes_parse() -> None:
    assert parse_node_attributes("") == {}
    assert parse_node_attributes("rack=r1, disk=ssd ,") == {"rack": "r1", "disk": "ssd"}
    assert parse_node_attributes("zone=eu-1a,owner=ops@example:team") == {
        "zone": "eu-1a",
        "owner": "ops@example:team",
    }


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("rack", "'rack': expected NAME=VALUE"),
        ("rack=r1,=ssd", "'=ssd': a name is"),
        ("rack=", "'rack=': a value is"),
        ("ra ck=r1", "a name is"),
        ("rack=r1;rm", "a value is"),
        ("os=plan9", "'os' is set by hatoba itself"),
        ("ecs.os-type=windows", "is set by hatoba itself"),
        ("rack=r1,rack=r2", "'rack' is given twice"),
        ("rack=" + "x" * 129, "a value is"),
    ],
)
def test_bad_node_attributes_name_the_variable_and_item(text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_node_attributes(text)
    assert str(err.value).startswith("HATOBA_NODE_ATTRIBUTES: bad item ")
    assert problem in str(err.value)


def test_settings_read_node_attributes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HATOBA_NODE_ATTRIBUTES", "rack=r1")
    assert Settings.from_env().node_attributes == {"rack": "r1"}
    monkeypatch.setenv("HATOBA_NODE_ATTRIBUTES", "rack")
    with pytest.raises(ConfigError, match="HATOBA_NODE_ATTRIBUTES"):
        Settings.from_env()


def test_registration_merges_custom_and_builtin_attributes() -> None:
    node = describe_this_machine("n1", "process", datetime.now(UTC), {"rack": "r1"})
    assert node.attributes["rack"] == "r1"
    assert node.attributes["ecs.os-type"] == node.attributes["os"]
    assert node.attributes["ecs.cpu-architecture"] in ("x86_64", "arm64", node.attributes["arch"])
    assert node.cpu % 1024 == 0
