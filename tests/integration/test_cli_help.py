"""The CLI's help formatter: sized like `shutil.get_terminal_size`, without importing shutil."""

from __future__ import annotations

import shutil

import pytest

from envsetup import cli


@pytest.mark.parametrize("columns", ["50", "120", "", "0", "wide"])
def test_help_width_is_what_shutil_would_say(columns: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", columns)
    expected = shutil.get_terminal_size().columns - 2
    assert cli.HelpFormatter("envsetup")._width == expected


def test_help_wraps_at_columns(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "50")
    with pytest.raises(SystemExit) as done:
        cli.main(["detect", "--help"])
    assert done.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "usage: envsetup detect [-h] [--json]"
    assert max(len(line) for line in lines) <= 50
