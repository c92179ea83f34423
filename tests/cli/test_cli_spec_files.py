"""--from-file bodies: JSON or YAML, and errors that name the file."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import typer

from hatoba.cli.spec_files import load_mapping


def test_json_and_yaml_by_extension(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('{"desiredCount": 2}')
    (tmp_path / "a.yaml").write_text("desiredCount: 3\n")
    assert load_mapping(str(tmp_path / "a.json"), "x") == {"desiredCount": 2}
    assert load_mapping(str(tmp_path / "a.yaml"), "x") == {"desiredCount": 3}


def test_stdin_is_yaml_unless_it_starts_with_a_brace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("a: 1\n"))
    assert load_mapping("-", "x") == {"a": 1}
    monkeypatch.setattr("sys.stdin", io.StringIO('  {"a": 2}'))
    assert load_mapping("-", "x") == {"a": 2}


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("bad.json", '{"a": ', "bad.json is not valid JSON: line 1"),
        ("bad.yaml", "a: [1\n", "bad.yaml is not valid YAML"),
        ("list.json", "[1, 2]", "list.json: a service must be a mapping"),
    ],
)
def test_errors_name_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, text: str, expected: str
) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(typer.Exit) as exc:
        load_mapping(str(tmp_path / name), "a service must be a mapping")
    assert exc.value.exit_code == 1
    assert expected in " ".join(capsys.readouterr().err.split())


def test_a_missing_file_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(typer.Exit):
        load_mapping(str(tmp_path / "nope.json"), "x")
    assert "cannot read" in capsys.readouterr().err
