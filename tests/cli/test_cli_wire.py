"""Client-side decoding: log lines back to exact bytes, API errors to readable text."""

from __future__ import annotations

import io

import pytest

from hatoba.cli.logs_out import format_line, write_lines
from hatoba.client import ApiError, LogLine
from hatoba.client.exec_session import ws_url
from hatoba.client.logs import parse_ndjson
from hatoba.model.errors import FieldError


def test_log_lines_round_trip_bytes() -> None:
    raw = b"\xff\xfebinary"
    lines = list(
        parse_ndjson(
            [
                '{"timestampNs": 1, "container": "a", "stream": "stdout", "message": "h\\u00e9"}',
                "",
                '{"timestampNs": 2, "container": "a", "stream": "stderr", '
                '"messageBase64": "//5iaW5hcnk=", "eol": false}',
            ]
        )
    )
    assert lines[0] == LogLine("a", "stdout", 1, "hé".encode(), True)
    assert lines[1] == LogLine("a", "stderr", 2, raw, False)
    assert LogLine.from_wire(lines[1].wire()) == lines[1]
    out, err = io.BytesIO(), io.BytesIO()
    assert write_lines(lines, stdout=out, stderr=err) == 2
    assert out.getvalue() == "hé\n".encode() and err.getvalue() == raw
    assert format_line(lines[0], prefix=True) == "a | hé\n".encode()
    assert format_line(lines[0], timestamps=True).startswith(b"1970-01-01T00:00:00.000000Z ")


def test_error_object_in_stream_raises() -> None:
    with pytest.raises(ApiError, match="boom"):
        list(parse_ndjson(['{"error": {"code": "X", "message": "boom"}}']))


def test_api_error_text_lists_fields_once() -> None:
    body = {
        "error": {
            "code": "ValidationFailed",
            "message": "invalid input:\n  - cpu: must be ≥ 1",
            "errors": [{"path": "cpu", "message": "must be ≥ 1"}, {"path": "x", "message": "bad"}],
        }
    }
    err = ApiError.from_body(422, body, "")
    assert (err.status, err.code) == (422, "ValidationFailed")
    assert err.errors == [FieldError("cpu", "must be ≥ 1"), FieldError("x", "bad")]
    assert str(err) == "invalid input:\n  - cpu: must be ≥ 1\n  - x: bad"
    plain = ApiError.from_body(502, None, "Bad Gateway")
    assert (plain.code, str(plain)) == ("HTTP502", "Bad Gateway")


def test_ws_url() -> None:
    assert ws_url("http://h:1/", "abc") == "ws://h:1/v1/tasks/abc/exec"
    assert ws_url("https://h", "abc") == "wss://h/v1/tasks/abc/exec"
