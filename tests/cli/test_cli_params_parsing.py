import io

import pytest
import typer

from hatoba.cli.access_cmd import _duration_hours
from hatoba.cli.params import read_value


def test_value_from_argument_file_or_stdin(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    assert read_value("v", None) == "v"
    f = tmp_path / "secret"
    f.write_text("s3cr3t\n")
    assert read_value(None, str(f)) == "s3cr3t"
    monkeypatch.setattr("sys.stdin", io.StringIO("from-stdin\n"))
    assert read_value(None, "-") == "from-stdin"


@pytest.mark.parametrize(("value", "file"), [(None, None), ("v", "f")])
def test_value_needs_exactly_one_source(value: str | None, file: str | None) -> None:
    with pytest.raises(typer.Exit) as exc:
        read_value(value, file)
    assert exc.value.exit_code == 2


def test_missing_value_file_is_a_usage_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(typer.Exit) as exc:
        read_value(None, str(tmp_path / "nope"))
    assert exc.value.exit_code == 2


def test_token_lifetimes() -> None:
    assert _duration_hours("30d") == 720
    assert _duration_hours("12h") == 12
    assert _duration_hours("90m") == 1.5
