"""`--requirements FILE` and `--project DIR[groups]`: the user's torch-family specifiers
constrain the plan, and the rest of their requirements is installed after the torch family."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet

from envsetup.cli import main
from envsetup.matrices import load
from envsetup.resolve.user_requirements import read_user_requirements

AMPERE = ["--driver", "535.104.05", "--cuda", "12.2", "--compute-cap", "8.6"]
TARGET = ["--platform", "linux-x86_64", "--python", "3.11"]


def _plan(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, object], str]:
    code = main(["plan", *AMPERE, *TARGET, *argv, "--json"])
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if captured.out else {}), captured.err


def _newest(spec: str) -> str:
    return str(max(r.version for r in load().releases if SpecifierSet(spec).contains(r.version)))


def test_requirements_range_plans_the_newest_release_inside_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("requirements.txt").write_text("numpy>=1.26\ntorch>=2.4,<2.6\n")
    code, plan, _ = _plan(capsys, "--requirements", "requirements.txt")
    assert code == 0
    assert plan["torch"] == _newest(">=2.4,<2.6") == "2.5.1"
    assert "torch<2.6,>=2.4 (requirements.txt:2) constrains the choice" in plan["reasons"]
    commands = [shlex.split(line) for line in plan["commands"]]  # type: ignore[union-attr]
    assert commands[0][:5] == ["python", "-m", "pip", "install", "--index-url"]
    assert "numpy>=1.26" not in commands[0]  # the rest never goes through the PyTorch index
    assert commands[1] == ["python", "-m", "pip", "install", "-r", "requirements.txt"]


def test_includes_comments_continuations_markers_and_index_lines(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "requirements.txt").write_text(
        "--index-url https://mirror.invalid/simple\n"
        "# a comment\n"
        "-r sub/base.txt\n"
        "--constraint=sub/pins.txt\n"
        'torch<1.0 ; python_version < "3.0"  # never on this Python\n'
    )
    (tmp_path / "sub/base.txt").write_text("torch \\\n  >=2.4\nrequests\n")
    (tmp_path / "sub/pins.txt").write_text("torchvision<0.21\n")
    found = read_user_requirements([str(tmp_path / "requirements.txt")], [])
    assert [str(c) for c in found.constraints] == [
        "torch>=2.4 (base.txt:1)",
        "torchvision<0.21 (pins.txt:1)",
    ]
    assert found.notes and "--index-url ignored for the torch family" in found.notes[0]
    assert found.rest == (("-r", str(tmp_path / "requirements.txt")),)


def test_companion_constraint_is_pinned_and_combined_with_torch_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("torchvision<0.21\n")
    code, plan, _ = _plan(capsys, "--requirements", str(requirements), "--torch", ">=2.4")
    release = load().release(str(plan["torch"]))
    assert code == 0 and release is not None
    assert release.torchvision is not None
    assert SpecifierSet("<0.21").contains(release.torchvision)
    assert any(str(p).startswith("torchvision==") for p in plan["packages"])  # type: ignore[union-attr]


def test_conflicting_constraints_exit_1_naming_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("torch<2.0\n")
    code, _, err = _plan(capsys, "--requirements", str(requirements), "--torch", "2.5.1")
    assert code == 1
    assert "no torch release matches" in err


def test_project_dependencies_and_selected_groups(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "demo"\nversion = "1"\ndependencies = ["torch>=2.4"]\n'
        '[project.optional-dependencies]\nold = ["torch<2.6"]\nnew = ["torch>=2.6"]\n'
    )
    code, plan, _ = _plan(capsys, "--project", f"{tmp_path}[old]")
    assert code == 0
    assert plan["torch"] == _newest(">=2.4,<2.6")
    assert "torch<2.6 (pyproject.toml [old][0]) constrains the choice" in plan["reasons"]
    assert shlex.split(plan["commands"][1])[-2:] == ["-e", f"{tmp_path}[old]"]  # type: ignore[index]
    code, _, err = _plan(capsys, "--project", f"{tmp_path}[gpu]")
    assert code == 2 and "no optional-dependencies group 'gpu'" in err


def test_unreadable_requirements_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _plan(capsys, "--requirements", str(tmp_path / "missing.txt"))
    assert code == 2 and "cannot read it" in err
