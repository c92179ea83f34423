"""load_env_file (the one bit of I/O in the model) and variable precedence."""

from __future__ import annotations

import pytest

from hatoba.model.errors import ValidationFailed
from hatoba.model.taskdef_envfile import load_env_file, merge_environment


def test_reads_dotenv_syntax_without_interpolation(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME_FROM_HOST", "/root")
    path = tmp_path / "app.env"
    path.write_text(
        "# comment\n"
        "PLAIN=value\n"
        'QUOTED="two words"\n'
        "export EXPORTED=yes\n"
        "EMPTY=\n"
        "REF=${HOME_FROM_HOST}/x\n"
        "SINGLE='a # not a comment'\n"
    )
    assert load_env_file(path) == {
        "PLAIN": "value",
        "QUOTED": "two words",
        "EXPORTED": "yes",
        "EMPTY": "",
        "REF": "${HOME_FROM_HOST}/x",
        "SINGLE": "a # not a comment",
    }


def test_missing_file_is_named(tmp_path):
    path = tmp_path / "nope.env"
    with pytest.raises(ValidationFailed) as info:
        load_env_file(path)
    (error,) = info.value.errors
    assert error.path == str(path)
    assert "cannot read environment file" in error.message
    assert "No such file" in error.message


def test_directory_and_binary_files_are_rejected(tmp_path):
    with pytest.raises(ValidationFailed):
        load_env_file(tmp_path)
    binary = tmp_path / "bin.env"
    binary.write_bytes(b"A=\xff\xfe\n")
    with pytest.raises(ValidationFailed) as info:
        load_env_file(binary)
    assert info.value.errors[0].path == str(binary)


def test_key_without_value_is_an_error(tmp_path):
    path = tmp_path / "a.env"
    path.write_text("A=1\nLONELY\n")
    with pytest.raises(ValidationFailed) as info:
        load_env_file(path)
    assert [e.message for e in info.value.errors] == [
        "LONELY has no value (write LONELY= for an empty value)"
    ]


def test_precedence_files_then_environment_then_secrets():
    merged = merge_environment(
        [{"A": "file1", "B": "file1"}, {"B": "file2", "C": "file2"}],
        {"C": "env", "D": "env"},
        {"D": "secret"},
    )
    assert merged == {"A": "file1", "B": "file2", "C": "env", "D": "secret"}
