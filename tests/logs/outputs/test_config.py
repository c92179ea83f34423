"""Where outputs come from: ECS logConfiguration shapes, the cluster-wide list, and the
upstream's balancing (pure)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hatoba.logs.outputs.factory import load_cluster_outputs
from hatoba.logs.outputs.upstream import Upstream
from hatoba.model.ecs_import import parse_task_definition
from hatoba.model.errors import ValidationFailed
from hatoba.model.log_outputs import (
    Balance,
    FileOutput,
    ForwardNode,
    ForwardOutput,
    HttpOutput,
    output_from_log_configuration,
    parse_size,
)


def mapped(driver: str, **options: str):
    return output_from_log_configuration("web", "app", driver, options)


def test_fluentd_driver_maps_address_tag_and_ack():
    res = mapped(
        "fluentd",
        **{
            "fluentd-address": "tcp://10.0.0.5:24225,10.0.0.6*3",
            "tag": "app.{{.Name}}.{{.ID}}",
            "fluentd-request-ack": "false",
            "fluentd-async": "true",
            "hatoba-multiline-start": "^\\d",
        },
    )
    assert not res.errors
    spec = res.spec
    assert isinstance(spec, ForwardOutput)
    assert [(n.host, n.port, n.weight) for n in spec.nodes] == [
        ("10.0.0.5", 24225, 1),
        ("10.0.0.6", 24224, 3),
    ]
    assert spec.tag == "app.{container}.{task_id_short}"
    assert spec.require_ack is False
    assert [w.path for w in res.warnings] == ["logConfiguration.options['fluentd-async']"]
    assert spec.name.startswith("web.app.")
    # same options, same output (and the same saved offsets)
    one, two = (mapped("fluentd", **{"fluentd-address": "10.0.0.5:24225"}) for _ in "12")
    assert one.spec is not None and two.spec is not None and one.spec.name == two.spec.name


def test_fluentd_defaults_to_localhost_with_acks():
    spec = mapped("fluentd").spec
    assert isinstance(spec, ForwardOutput)
    assert spec.nodes == [ForwardNode(host="localhost", port=24224)] and spec.require_ack


def test_firelens_forward_http_and_file():
    fwd = mapped("awsfirelens", Name="forward", Host="agg", Port="24230", Compress="gzip").spec
    assert isinstance(fwd, ForwardOutput)
    assert (fwd.nodes[0].host, fwd.nodes[0].port, fwd.compress) == ("agg", 24230, "gzip")
    assert fwd.tag == "{container}-firelens-{task_id}"  # ECS's FireLens tag
    up = mapped("awsfirelens", Name="forward", Upstream="a:1,b:2", hatoba_balance="failover")
    assert isinstance(up.spec, ForwardOutput) and up.spec.balance is Balance.FAILOVER
    http = mapped(
        "awsfirelens", Name="http", Host="logs", Port="8443", URI="/in", tls="on",
        Header="X-Key abc", http_User="u", http_Passwd="p",
    ).spec  # fmt: skip
    assert isinstance(http, HttpOutput)
    assert http.url == "https://logs:8443/in"
    assert http.headers == {"X-Key": "abc", "Authorization": "Basic dTpw"}
    f = mapped("awsfirelens", Name="file", Path="/var/log/x/", File="{family}.log").spec
    assert isinstance(f, FileOutput) and f.path == "/var/log/x/{family}.log"


def test_other_drivers_stay_local_with_a_warning():
    for driver, options in [("awslogs", {}), ("awsfirelens", {"Name": "cloudwatch"})]:
        res = mapped(driver, **options)
        assert res.spec is None and not res.errors
        assert "logs stay local" in res.warnings[0].message


def test_bad_options_are_errors_at_registration_naming_the_field():
    td = {
        "family": "web",
        "containerDefinitions": [
            {
                "name": "app",
                "command": ["true"],
                "logConfiguration": {
                    "logDriver": "fluentd",
                    "options": {"fluentd-address": "unix:///x.sock", "tag": "{nope}"},
                },
            }
        ],
    }
    with pytest.raises(ValidationFailed) as err:
        parse_task_definition(td)
    paths = [e.path for e in err.value.errors]
    assert paths == [
        "containerDefinitions[0].logConfiguration.options['fluentd-address']",
        "containerDefinitions[0].logConfiguration.options['tag']",
    ]


def test_cluster_outputs_from_env_json_file_or_home(tmp_path: Path, monkeypatch):
    outputs = [
        {
            "name": "central",
            "type": "forward",
            "nodes": [{"host": "a", "port": 1, "weight": 2}, {"host": "b"}],
            "match": {"services": ["api*"]},
            "bufferBytes": "64MiB",
        },
        {"name": "archive", "type": "file", "path": "/logs/{family}.jsonl"},
    ]
    from_env = load_cluster_outputs(json.dumps(outputs), tmp_path)
    assert [o.name for o in from_env.outputs] == ["central", "archive"]
    central = from_env.outputs[0]
    assert isinstance(central, ForwardOutput) and central.buffer_bytes == 64 << 20
    assert central.match.matches("web", "api-v2", "app")
    assert not central.match.matches("web", None, "app")
    yaml_file = tmp_path / "custom.yaml"
    yaml_file.write_text("outputs:\n  - {name: h, type: http, url: 'http://x/'}\n")
    assert load_cluster_outputs(str(yaml_file), tmp_path).outputs[0].name == "h"
    (tmp_path / "log-outputs.yaml").write_text("- {name: f, type: file, path: /x}\n")
    assert load_cluster_outputs(None, tmp_path).outputs[0].name == "f"
    assert load_cluster_outputs(None, tmp_path / "nowhere").outputs == []


def test_cluster_output_errors_name_every_field():
    bad = [
        {"name": "x", "type": "forward", "nodes": [{"host": "a", "port": 0}]},
        {"name": "x", "type": "http", "url": "ftp://x"},
        {"name": "y", "type": "carrier-pigeon"},
    ]
    with pytest.raises(ValidationFailed) as err:
        load_cluster_outputs(json.dumps(bad), Path("/nonexistent"))
    paths = [e.path for e in err.value.errors]
    assert "outputs[0].nodes[0].port" in paths
    assert "outputs[1].url" in paths
    assert any(p.startswith("outputs[2]") for p in paths)


def test_sizes():
    assert parse_size("256MiB") == 256 << 20
    assert parse_size("100M") == 100 << 20
    assert parse_size("1g") == 1 << 30
    assert parse_size("4096") == 4096
    with pytest.raises(ValueError):
        parse_size("12 parsecs")


def test_smooth_weighted_round_robin_and_backoff():
    up = Upstream(
        [ForwardNode(host="a", weight=2), ForwardNode(host="b")], retry_min=1, retry_max=4
    )
    picks = [up.candidates(0)[0].node.host for _ in range(6)]
    assert picks == ["a", "b", "a", "a", "b", "a"]
    a = up.nodes[0]
    assert [up.mark_down(a, 0) for _ in range(4)] == [1, 2, 4, 4]
    assert [n.node.host for n in up.candidates(1)] == ["b"]
    assert up.next_up_in(1) == 0  # b is up
    up.mark_down(up.nodes[1], 1)  # b down until 2, a until 4
    assert up.candidates(1) == [] and up.next_up_in(1) == 1
    assert up.candidates(5)[0].node.host in ("a", "b")
    up.mark_up(a)
    assert a.failures == 0
    fo = Upstream([ForwardNode(host="a"), ForwardNode(host="b")], Balance.FAILOVER)
    assert [n.node.host for n in fo.candidates(0)] == ["a", "b"]
