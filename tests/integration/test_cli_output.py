"""What each verb writes where: only the artefact on stdout (valid as a file when redirected),
explanations on stderr, `-o FILE`, `-q`, and `--json` on every verb, failures included."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

from envsetup.cli import main

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

MACHINE = ["--driver", "535.104.05", "--cuda", "12.2", "--compute-cap", "8.6"]
TARGET = ["--platform", "linux-x86_64", "--python", "3.11", "--torch", "2.5.1"]


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_redirected_requirements_file_is_one_pip_reads(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = cli(capsys, "plan", *MACHINE, *TARGET, "--installer", "requirements")
    assert code == 0
    assert "then run: python -m pip install -r requirements.txt" in err and "why:" in err
    for line in out.splitlines():
        if not line or line.startswith("#"):
            continue
        if line.startswith("--"):
            assert line.split()[0] in ("--index-url", "--no-index", "--find-links", "--pre")
        else:
            assert Requirement(line).name == "torch"
    # pip itself parses the file (it reads options and requirements before any download).
    (tmp_path / "requirements.txt").write_text(out)
    parsed = subprocess.run(
        [sys.executable, "-c", _PIP_PARSE, str(tmp_path / "requirements.txt")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert parsed.returncode == 0, parsed.stderr
    assert parsed.stdout.split() == ["torch==2.5.1+cu121"]


_PIP_PARSE = """\
import sys
from pip._internal.network.session import PipSession
from pip._internal.req.req_file import parse_requirements
for req in parse_requirements(sys.argv[1], session=PipSession()):
    print(req.requirement)
"""


@pytest.mark.parametrize("installer", ["uv-project", "poetry", "pixi"])
def test_redirected_toml_snippets_parse(capsys: pytest.CaptureFixture[str], installer: str) -> None:
    code, out, err = cli(capsys, "plan", *MACHINE, *TARGET, "--installer", installer)
    assert code == 0
    document = tomllib.loads(out)
    assert document and "then run:" in err and "then run:" not in out


def test_redirected_conda_environment_parses(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "plan", *MACHINE, *TARGET, "--installer", "conda")
    assert code == 0
    document = yaml.safe_load(out)
    pip = ["--index-url https://download.pytorch.org/whl/cu121", "torch==2.5.1+cu121"]
    assert {"pip": pip} in document["dependencies"]


def test_output_file_and_quiet(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    target = tmp_path / "requirements.txt"
    argv = ["plan", *MACHINE, *TARGET, "--installer", "requirements"]
    code, out, err = cli(capsys, *argv, "-o", str(target))
    assert code == 0 and out == ""
    assert "torch==2.5.1+cu121" in target.read_text()
    assert f"wrote {target}" in err
    code, out, err = cli(capsys, *argv, "-q")
    assert code == 0 and err == "" and out.endswith("torch==2.5.1+cu121\n")


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["plan", "--gpu", "none", "--platform", "linux-x86_64", "--torch", "9.9"], 1, "9.9"),
        (["plan", "--python", "/nonexistent/python"], 2, "/nonexistent/python"),
        (["install", "--frobnicate"], 2, "unrecognized arguments: --frobnicate"),
        (["venv"], 2, "the following arguments are required: PATH"),
        (["detect", "--nvidia-smi-output", "/nonexistent/smi.txt"], 2, "cannot read"),
        (["verify", "--python", "/nonexistent/python", "--gpu", "none"], 2, "was not found"),
    ],
)
def test_json_failures_are_a_json_document(
    capsys: pytest.CaptureFixture[str], argv: list[str], code: int, message: str
) -> None:
    result, out, err = cli(capsys, *argv, "--json")
    assert result == code
    error = json.loads(out)["error"]
    assert error["exit_code"] == code and message in error["message"]
    assert "hint" in error
    assert message in err  # people reading the terminal still see it


def test_install_and_venv_take_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = cli(
        capsys, "install", "--gpu", "none", "--torch", "2.5.1", "--dry-run", "--json",
        "--python", sys.executable,
    )  # fmt: skip
    document = json.loads(out)
    assert code == 0 and document["plan"]["torch"] == "2.5.1"
    assert document["target"] == {"python": sys.executable, "source": "--python"}
    code, out, _ = cli(capsys, "venv", str(tmp_path), "--gpu", "none", "--json")
    assert code == 1 and "error" in json.loads(out)  # tmp_path exists: refused, as JSON


def test_plan_python_that_does_not_exist_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "plan", "--gpu", "none", "--python", "/nonexistent/python")
    assert code == 2 and out == ""
    assert "interpreter '/nonexistent/python' was not found" in err


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    for flag in ("-V", "--version"):
        with pytest.raises(SystemExit) as done:
            main([flag])
        assert done.value.code == 0
        assert capsys.readouterr().out.startswith("envsetup ")
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "examples:" in text and "exit codes:" in text and "  2    bad input" in text
    with pytest.raises(SystemExit):
        main(["plan", "--help"])
    lines = capsys.readouterr().out.splitlines()
    for option in ("--policy", "--channel", "--installer", "--shell", "--backend", "--gpu"):
        # the option's entry in the list has its own help: after its choices, or on the next line
        at = next(i for i, line in enumerate(lines) if line.startswith(f"  {option} "))
        entry = lines[at].split("}", 1)[-1] if "{" in lines[at] else lines[at].split(None, 2)[-1]
        assert entry.strip() or lines[at + 1].startswith(" " * 8), option


@pytest.mark.parametrize(
    ("uv_on_path", "first"), [(True, "uv pip install"), (False, "python -m pip")]
)
def test_installer_auto_prefers_uv_on_path(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    uv_on_path: bool,
    first: str,
) -> None:
    if uv_on_path:
        uv = tmp_path / "uv"
        uv.write_text("#!/bin/sh\n")
        uv.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("ENVSETUP_INSTALLER")  # the suite's pin: this test is about the default
    code, out, _ = cli(capsys, "plan", *MACHINE, *TARGET)
    assert code == 0 and out.startswith(first)


def test_provenance_warnings_name_no_checkout_path(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "plan", "--gpu", "none", "--platform", "linux-x86_64", "--json")
    warnings = json.loads(out)["warnings"]
    assert code == 0 and not any("matrices/torch.toml" in warning for warning in warnings)
