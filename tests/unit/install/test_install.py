"""`envsetup install` into an existing environment: real pip/uv against the fake index."""

from __future__ import annotations

import json
import os
import pty
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from support.fake_index import (
    CPU_BUILDS,
    Served,
    build_index,
    index_fixture,
    run_envsetup,
    serve_index,
    uv_executable,
)

from envsetup.install.argv import install_argv
from envsetup.model.machine import Machine, Platform
from envsetup.model.plan import Request
from envsetup.resolve import resolve

index = index_fixture(CPU_BUILDS)


@pytest.fixture
def uv_env(tmp_path: Path, env: dict[str, str]) -> Path:
    """An empty environment (uv venv: no pip), returned as its interpreter."""
    uv = uv_executable()  # skips the test where there is no uv
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(tmp_path / "env")], env=env,
                   check=True)  # fmt: skip
    return tmp_path / "env" / "bin" / "python"


def flags(index: Served, *extra: str) -> list[str]:
    return ["--gpu", "none", *index.flags, *extra]


def torch_version(python: Path, env: dict[str, str]) -> str | None:
    code = (
        "from importlib import metadata as m\ntry: print(m.version('torch'))\nexcept Exception: 0"
    )
    out = subprocess.run(
        [str(python), "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.strip() or None


def test_dry_run_prints_the_planned_command_and_runs_nothing(
    uv_env: Path, index: Served, env: dict[str, str]
) -> None:
    result = run_envsetup(
        "install", "--python", str(uv_env), "--dry-run", "--torch", "2.5.1", "--with",
        "torchvision", *flags(index), env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    platform = Platform("linux", "x86_64", f"{sys.version_info[0]}.{sys.version_info[1]}")
    plan = resolve(
        Machine(platform=platform),
        Request(
            torch="2.5.1",
            with_=("torchvision",),
            index_url_base=index.url,
            allow_insecure_index=True,
        ),
    )
    assert result.stdout.strip() == shlex.join(install_argv(plan, python=str(uv_env)))
    assert torch_version(uv_env, env) is None
    assert not any(path.endswith(".whl") for path in index.requests)


def test_dry_run_with_uv_names_the_uv_executable(uv_env: Path, index: Served, env: dict) -> None:
    result = run_envsetup(
        "install", "--python", str(uv_env), "--installer", "uv", "--dry-run", "--torch", "2.5.1",
        *flags(index), env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    argv = shlex.split(result.stdout)
    assert argv[0].endswith("uv") and Path(argv[0]).exists()
    assert argv[1:] == [
        "pip", "install", "--python", str(uv_env), "--index-url", f"{index.url}/cpu",
        "torch==2.5.1+cpu",
    ]  # fmt: skip


def test_install_with_uv_streams_output_and_verifies(
    uv_env: Path, index: Served, env: dict[str, str]
) -> None:
    result = run_envsetup(
        "install", "--python", str(uv_env), "--installer", "uv", "--torch", "2.5.1", "--with",
        "torchvision", *flags(index), env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == (
        f"envsetup: installing torch==2.5.1+cpu torchvision==0.20.1+cpu from {index.url}/cpu "
        f"into {uv_env} (--python)"
    )
    assert " + torchvision==0.20.1+cpu" in lines  # uv's own output came through, on stderr
    assert result.stdout.startswith(f"verify {uv_env}")  # stdout: only the report
    assert "all 7 checks passed" in result.stdout
    assert torch_version(uv_env, env) == "2.5.1+cpu"


def test_install_json_is_one_document_on_stdout_and_the_installer_talks_on_stderr(
    uv_env: Path, index: Served, env: dict[str, str]
) -> None:
    result = run_envsetup(
        "install", "--python", str(uv_env), "--installer", "uv", "--torch", "2.5.1", "--json",
        *flags(index), env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads(result.stdout)  # nothing else on stdout
    assert {"target", "plan", "verify", "installer", "command"} <= set(document)
    assert document["target"]["python"] == str(uv_env)
    assert document["plan"]["packages"] == ["torch==2.5.1+cpu"]
    assert document["verify"]["ok"] is True
    assert " + torch==2.5.1+cpu" in result.stderr.splitlines()  # uv's own output
    assert torch_version(uv_env, env) == "2.5.1+cpu"


@pytest.mark.slow
def test_install_with_pip_into_a_stdlib_venv(
    tmp_path: Path, index: Served, env: dict[str, str]
) -> None:
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "env")], env=env, check=True)
    python = tmp_path / "env" / "bin" / "python"
    result = run_envsetup("install", "--python", str(python), "--torch", "2.5.1",
                          *flags(index), env=env)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Successfully installed torch-2.5.1+cpu" in result.stderr
    assert "ok    expect" in result.stdout
    assert torch_version(python, env) == "2.5.1+cpu"


def test_replacing_a_build_needs_yes_when_not_interactive(
    uv_env: Path, index: Served, env: dict[str, str]
) -> None:
    common = ["install", "--python", str(uv_env), "--installer", "uv", *flags(index)]
    assert run_envsetup(*common, "--torch", "2.5.0", env=env).returncode == 0
    refused = run_envsetup(*common, "--torch", "2.5.1", env=env)
    assert refused.returncode == 1
    assert (
        f"this would replace torch==2.5.0+cpu in {uv_env} with torch==2.5.1+cpu, and there is "
        "no terminal to ask for confirmation" in refused.stderr
    )
    assert "rerun with --yes" in refused.stderr
    assert torch_version(uv_env, env) == "2.5.0+cpu"
    replaced = run_envsetup(*common, "--torch", "2.5.1", "--yes", env=env)
    assert replaced.returncode == 0, replaced.stderr
    # The same build at another version: a plain upgrade, not a forced reinstall of everything.
    assert "upgrades torch==2.5.0+cpu installed in the target environment" in replaced.stderr
    assert " pip install --python " in replaced.stderr and "--reinstall" not in replaced.stderr
    assert torch_version(uv_env, env) == "2.5.1+cpu"


@pytest.mark.parametrize(
    ("answer", "code", "version"), [("n", 1, "2.5.0+cpu"), ("y", 0, "2.5.1+cpu")]
)
def test_replacing_a_build_asks_on_a_terminal(
    uv_env: Path, index: Served, env: dict[str, str], answer: str, code: int, version: str
) -> None:
    common = ["install", "--python", str(uv_env), "--installer", "uv", *flags(index)]
    assert run_envsetup(*common, "--torch", "2.5.0", env=env).returncode == 0
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "envsetup", *common, "--torch", "2.5.1"],
        stdin=terminal,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    os.close(terminal)
    os.write(controller, f"{answer}\n".encode())
    stdout, stderr = process.communicate(timeout=120)
    os.close(controller)
    assert process.returncode == code, stdout + stderr
    assert "Replace torch==2.5.0+cpu in" in stdout + stderr and "[y/N]" in stdout + stderr
    if answer == "n":
        assert "replacing the existing build was declined" in stderr
    assert torch_version(uv_env, env) == version


@pytest.mark.parametrize("quiet", [(), ("-q",)])
def test_missing_wheel_is_a_clear_failure_with_the_installer_lines_once(
    uv_env: Path, index: Served, env: dict[str, str], quiet: tuple[str, ...]
) -> None:
    """Streamed, the installer's lines are above the error; with -q only the error quotes them.
    Either way each is printed once (it used to be streamed, then quoted again)."""
    result = run_envsetup(
        "install", "--python", str(uv_env), "--installer", "uv", "--torch", "2.5.0", "--with",
        "torchaudio", *flags(index), *quiet, env=env,
    )  # fmt: skip
    assert result.returncode == 1
    assert "step 'install' failed" in result.stderr
    assert result.stderr.count("No solution found when resolving") == 1, result.stderr
    assert ("    | " in result.stderr) == bool(quiet)
    assert ("its output is above" in result.stderr) != bool(quiet)
    assert "hint: the index has no wheel matching" in result.stderr
    assert "Traceback" not in result.stderr
    assert torch_version(uv_env, env) is None


def test_install_from_the_nightly_channel_verifies_without_an_exact_pin(
    uv_env: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    """A channel plan's torch is "the newest there", not a version: verify once asked for
    `torch==latest` and the install ended in an internal error."""
    root = tmp_path / "index"
    (root / "nightly").mkdir(parents=True)
    (root / "nightly" / "cpu").symlink_to(build_index(CPU_BUILDS) / "cpu")
    with serve_index(root) as served:
        result = run_envsetup(
            "install", "--python", str(uv_env), "--installer", "uv", "--channel", "nightly",
            *flags(served), env=env,
        )  # fmt: skip
    assert "internal error" not in result.stderr.lower(), result.stderr
    assert result.returncode == 0, result.stdout + result.stderr
    assert "checks passed" in result.stdout and "expect" in result.stdout
    assert torch_version(uv_env, env) == "2.5.1+cpu"
