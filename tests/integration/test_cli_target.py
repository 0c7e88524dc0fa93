"""Which environment the CLI acts on: `--python`, the active venv or conda env, never a pipx or
`uv tool` environment of envsetup's own. Real venvs, real `python -m envsetup` processes."""

from __future__ import annotations

import json
import shlex
import site
import subprocess
import sys
from pathlib import Path

import pytest
from support.fake_index import run_envsetup

from envsetup.install.target import tool_environment

NO_GPU = ["--gpu", "none", "--installer", "pip"]


def make_venv(path: Path, torch: str | None = None) -> Path:
    """A stdlib venv (no pip: fast) holding, if asked, a torch distribution's metadata."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    if torch is not None:
        site_packages = next(path.glob("lib/python3*/site-packages"))
        info = site_packages / f"torch-{torch}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: torch\nVersion: {torch}\n")
    return path / "bin" / "python"


@pytest.fixture(scope="module")
def other(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv that is not envsetup's, with torch 2.4.0+cu118 "installed"."""
    return make_venv(tmp_path_factory.mktemp("other") / "venv", "2.4.0+cu118")


def plan_json(env: dict[str, str], *argv: str) -> dict[str, object]:
    result = run_envsetup("plan", *NO_GPU, "--torch", "2.5.1", "--json", *argv, env=env)
    assert result.returncode == 0, result.stderr
    document: dict[str, object] = json.loads(result.stdout)
    return document


def test_plan_reads_the_active_virtual_env(other: Path, env: dict[str, str]) -> None:
    document = plan_json({**env, "VIRTUAL_ENV": str(other.parent.parent)})
    assert document["target"] == {"python": str(other), "source": "VIRTUAL_ENV"}
    assert document["replaces"] == "torch==2.4.0+cu118"
    human = run_envsetup(
        "plan", *NO_GPU, "--torch", "2.5.1", env={**env, "VIRTUAL_ENV": str(other.parent.parent)}
    )
    assert f"target: {other} (VIRTUAL_ENV)" in human.stderr
    assert "--force-reinstall" in shlex.split(human.stdout)


def test_without_an_active_env_the_plan_is_for_envsetups_own(env: dict[str, str]) -> None:
    document = plan_json(env)
    assert document["target"] == {"python": sys.executable, "source": "envsetup's own environment"}
    assert document["replaces"] is None  # this test venv has no torch


def test_a_non_base_conda_env_is_the_target_and_base_is_not(
    tmp_path: Path, env: dict[str, str], other: Path
) -> None:
    conda_env = make_venv(tmp_path / "miniforge" / "envs" / "work", "2.4.0+cu118")
    (tmp_path / "miniforge" / "envs" / "work" / "conda-meta").mkdir()
    active = {**env, "CONDA_PREFIX": str(conda_env.parent.parent), "CONDA_DEFAULT_ENV": "work"}
    assert plan_json(active)["target"] == {"python": str(conda_env), "source": "CONDA_PREFIX"}
    # `conda init` activates base in every shell: that is no choice of target.
    base = {**env, "CONDA_PREFIX": str(conda_env.parent.parent), "CONDA_DEFAULT_ENV": "base"}
    assert plan_json(base)["target"] == {
        "python": sys.executable,
        "source": "envsetup's own environment",
    }
    # A venv activated on top of conda wins.
    both = {**active, "VIRTUAL_ENV": str(other.parent.parent)}
    assert plan_json(both)["target"] == {"python": str(other), "source": "VIRTUAL_ENV"}


def test_install_and_verify_act_on_the_active_env(other: Path, env: dict[str, str]) -> None:
    active = {**env, "VIRTUAL_ENV": str(other.parent.parent)}
    dry = run_envsetup("install", *NO_GPU, "--torch", "2.5.1", "--dry-run", env=active)
    assert dry.returncode == 0, dry.stderr
    assert shlex.split(dry.stdout)[:4] == [str(other), "-m", "pip", "install"]
    checked = run_envsetup("verify", "--gpu", "none", "--json", env=active)
    report = json.loads(checked.stdout)
    assert report["target"] == {"python": str(other), "source": "VIRTUAL_ENV"}
    assert report["python"] == str(other)
    assert checked.returncode == 1  # the fake metadata has no importable torch behind it


def test_a_stale_virtual_env_is_a_usage_error(tmp_path: Path, env: dict[str, str]) -> None:
    gone = {**env, "VIRTUAL_ENV": str(tmp_path / "deleted")}
    result = run_envsetup("verify", "--gpu", "none", env=gone)
    assert result.returncode == 2
    assert "VIRTUAL_ENV is" in result.stderr and "does not exist" in result.stderr


@pytest.fixture(scope="module")
def pipx_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """envsetup installed as pipx installs it: its own venv under pipx/venvs/ (here the test
    venv's site-packages are added to it, so the checkout's envsetup and its deps import)."""
    root = tmp_path_factory.mktemp("home") / ".local" / "pipx" / "venvs" / "envsetup"
    python = make_venv(root)
    site_packages = next(root.glob("lib/python3*/site-packages"))
    paths = ", ".join(repr(path) for path in site.getsitepackages())
    (site_packages / "test_deps.pth").write_text(
        f"import site; list(map(site.addsitedir, ({paths},)))\n"
    )
    return python


@pytest.mark.parametrize("verb", [["install", "--dry-run"], ["verify"]])
def test_envsetups_own_pipx_env_is_never_a_target(
    pipx_python: Path, env: dict[str, str], verb: list[str]
) -> None:
    result = subprocess.run(
        [str(pipx_python), "-m", "envsetup", *verb, "--gpu", "none"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "is a tool environment (it lies under a pipx/venvs folder)" in result.stderr
    assert "activate the environment to use" in result.stderr and "--python" in result.stderr
    assert result.stdout == ""


def test_plan_from_a_pipx_env_plans_for_its_python_with_nothing_installed(
    pipx_python: Path, env: dict[str, str], other: Path
) -> None:
    argv = [str(pipx_python), "-m", "envsetup", "plan", *NO_GPU, "--json"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    target = json.loads(done.stdout)["target"]
    assert target["python"] == f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert "pipx/venvs" in target["source"]
    active = {**env, "VIRTUAL_ENV": str(other.parent.parent)}
    done = subprocess.run(argv, env=active, capture_output=True, text=True, check=True)
    assert json.loads(done.stdout)["target"]["python"] == str(other)


@pytest.mark.parametrize(
    ("relative", "marker", "expected"),
    [
        ("uv/tools/envsetup", None, "it lies under a uv/tools folder"),
        ("opt/tool", "uv-receipt.toml", "it holds uv-receipt.toml"),
        ("opt/tool", "lib/python3.12/site-packages/pipx_shared.pth", "it holds pipx_shared.pth"),
        ("home/me/project/.venv", None, None),
    ],
)
def test_tool_environment_markers(
    tmp_path: Path, relative: str, marker: str | None, expected: str | None
) -> None:
    root = tmp_path / relative
    root.mkdir(parents=True)
    if marker:
        (root / marker).parent.mkdir(parents=True, exist_ok=True)
        (root / marker).write_text("")
    assert tool_environment(root) == expected
