"""The README's CI recipes, run as printed (tests/support/recipes.py finds them by their markers).

Real nox, pip and uv processes against the 127.0.0.1 fake index; pytest and the build backend
come from wheels rebuilt from this interpreter's installs (no download). envsetup itself comes
from this checkout, as `pip install path/to/envsetup` puts it where nox runs.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.ci_tools import mirror_env, run_module
from support.fake_index import FakeBuild, Served, run_envsetup, serve_fake_index
from support.recipes import recipe

from envsetup.nox import plan_for_python
from integration.test_noxfile import _wheelhouse_for

PY = f"{sys.version_info.major}.{sys.version_info.minor}"

PROJECT_TEST = """\
import torch


def test_the_plugin_gives_a_device(device):
    assert isinstance(device, torch.device)
"""


@pytest.fixture(scope="module")
def planned() -> tuple[str, str]:
    """(torch, variant) `envsetup plan` picks for this machine and Python."""
    plan = plan_for_python(PY, environ={})
    return plan.torch, plan.variant


@pytest.fixture(scope="module")
def served(planned: tuple[str, str]) -> Iterator[Served]:
    torch, variant = planned
    with serve_fake_index([FakeBuild(torch, variant, torchvision=None, torchaudio=None)]) as index:
        yield index


@pytest.fixture(scope="module")
def support(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pytest, hatchling (envsetup's and the project's build backend) and editables."""
    dest = tmp_path_factory.mktemp("support-wheels")
    for name in ("pytest", "editables"):
        _wheelhouse_for(name, dest)
    return _wheelhouse_for("hatchling", dest)


def _project(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
        '[project]\nname = "demo"\nversion = "1.0"\n'
        '[tool.hatch.build.targets.wheel]\npackages = ["demo"]\n'
    )
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "__init__.py").write_text("")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_demo.py").write_text(PROJECT_TEST)
    return tmp_path


def _env(served: Served, support: Path) -> dict[str, str]:
    nothing = f"{served.url}/nothing-here/"
    return mirror_env(
        served.url,
        {"PIP_FIND_LINKS": str(support), "UV_FIND_LINKS": str(support),
         "PIP_INDEX_URL": nothing, "UV_INDEX_URL": nothing},
    )  # fmt: skip


def test_the_nox_recipe_lists_one_default_session_and_the_matrix_on_request(
    tmp_path: Path, served: Served
) -> None:
    project = _project(tmp_path)
    (project / "noxfile.py").write_text(recipe("nox-user"))
    every = ("nox", "-l", "--json", "-s", "verify")
    result = run_module(*every, cwd=project, env=mirror_env(served.url))
    assert result.returncode == 0, result.stderr
    cells = [item["session"] for item in json.loads(result.stdout)]
    assert len(cells) > 1 and all(cell.startswith("verify(python='3.1") for cell in cells)
    plain = run_module("nox", "-l", cwd=project, env=mirror_env(served.url))
    selected = [line for line in plain.stdout.splitlines() if line.startswith("* ")]
    assert [line.split()[1] for line in selected] == ["tests"]  # not 1 + every cell


@pytest.mark.slow
def test_the_nox_recipe_runs_as_printed_with_the_planned_build_and_the_plugin(
    tmp_path: Path, served: Served, support: Path, planned: tuple[str, str]
) -> None:
    project = _project(tmp_path)
    (project / "noxfile.py").write_text(recipe("nox-user"))
    result = run_module("nox", cwd=project, env=_env(served, support))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    torch, variant = planned
    assert f"--index-url {served.url}/{variant} torch=={torch}+{variant}" in output
    assert "torchvision" not in output  # no companions unless asked
    assert re.search(r"=+ 1 passed", output), output  # the `device` fixture was found
    assert "Session tests was successful" in output
    wheels = [path for path in served.requests if path.endswith(".whl")]
    assert wheels and all(path.startswith(f"/{variant}/torch/") for path in wheels), wheels


# --------------------------------------------------------------------------- tox recipe


@pytest.mark.slow
def test_the_tox_recipe_runs_as_printed_with_torch_first_and_the_plugin(
    tmp_path: Path, support: Path
) -> None:
    ini = recipe("tox")
    env_name = f"py{PY.replace('.', '')}-torch25-cpu"
    project = _project(tmp_path)
    (project / "tox.ini").write_text(ini)
    with serve_fake_index([FakeBuild("2.5.1", "cpu")]) as served:
        listed = run_module("tox", "-l", cwd=project, env=_env(served, support))
        if env_name not in listed.stdout.split():
            pytest.skip(f"the recipe's env_list has no environment for Python {PY}")
        # a single environment of the recipe's list: the others need other Pythons and builds
        result = run_module("tox", "-e", env_name, cwd=project, env=_env(served, support))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # torch and the torchvision named in deps, from the planned variant's index, first
    assert f"--index-url {served.url}/cpu torch==2.5.1+cpu torchvision==0.20.1+cpu" in output
    assert output.index("install_torch>") < output.index("install_envsetup>")
    assert output.index("install_envsetup>") < output.index("install_deps>")
    assert re.search(r"=+ 1 passed", output), output  # the `device` fixture was found
    wheels = [path for path in served.requests if path.endswith(".whl")]
    assert wheels and all(path.startswith("/cpu/") for path in wheels), wheels


# --------------------------------------------------------------------------- CI YAML recipes


def _commands(steps: list[str]) -> list[list[str]]:
    return [shlex.split(step) for step in steps]


def test_the_ci_recipes_parse_install_envsetup_as_users_can_and_their_matrix_commands_run(
    tmp_path: Path,
) -> None:
    yaml = pytest.importorskip("yaml")
    github = yaml.safe_load(recipe("github-actions"))
    gitlab = yaml.safe_load(recipe("gitlab"))
    runs = [
        step["run"] for job in github["jobs"].values() for step in job["steps"] if "run" in step
    ]
    scripts = gitlab["verify"]["script"]
    for line in [*runs, *scripts]:
        assert "install envsetup" not in line  # a name no registry has
        shlex.split(line)  # each command parses as a shell line
    # the ENVSETUP placeholder is a path or a direct reference, never a registry name
    assert github["env"]["ENVSETUP"].endswith(".whl")
    assert gitlab["variables"]["ENVSETUP"].endswith(".whl")
    # no `python:$PYTHON` image: 3.13t/3.14t have none; uv installs the cell's Python
    assert "$PYTHON" not in gitlab["verify"]["image"]
    assert scripts[0] == 'uv python install "$PYTHON"'
    # the envsetup commands the recipes run succeed offline and give what the jobs read
    github_cmd = runs[1].split("$(", 1)[1].rsplit(")", 1)[0]
    result = run_envsetup(*shlex.split(github_cmd)[1:], env=mirror_env("http://127.0.0.1:9"))
    assert result.returncode == 0, result.stderr
    jobs = json.loads(result.stdout)["include"]
    assert jobs and all(job["session"].startswith("verify(python=") for job in jobs)
    export = recipe("gitlab-export").split(">")[0]
    result = run_envsetup(*shlex.split(export)[1:], env=mirror_env("http://127.0.0.1:9"))
    assert result.returncode == 0, result.stderr
    matrix = yaml.safe_load(result.stdout)[".envsetup-matrix"]["parallel"]["matrix"]
    pythons = {job["PYTHON"] for job in matrix}
    assert any(python.endswith("t") for python in pythons)  # why the image is uv's
    assert all(re.fullmatch(r"3\.\d+t?", python) for python in pythons)  # uv's request form


@pytest.mark.parametrize("runner", ["gpu", "cpu"])
def test_the_github_verify_job_hands_pytest_only_options_it_takes(
    runner: str, tmp_path: Path
) -> None:
    """The job's words after `--` reach the nox recipe's pytest: they must be the plugin's
    `--envsetup-gpu`, not the CLI's or a noxfile's `--gpu`."""
    yaml = pytest.importorskip("yaml")
    github = yaml.safe_load(recipe("github-actions"))
    nox_line = next(
        step["run"]
        for step in github["jobs"]["verify"]["steps"]
        if step.get("run", "").startswith("nox ")
    )
    posargs = nox_line.split(" -- ", 1)[1]
    chosen = "'require'" if runner == "gpu" else "'auto'"
    posargs = re.sub(r"\$\{\{[^}]*\}\}", chosen, posargs)
    (tmp_path / "test_one.py").write_text("def test_one():\n    pass\n")
    result = run_module(
        "pytest",
        *shlex.split(posargs),
        "-q",
        "-p",
        "no:cacheprovider",
        cwd=tmp_path,
        env=mirror_env("http://127.0.0.1:9"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
