"""The project's noxfile: its listing, and `verify` cells run for real (fake index, real torch)."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from support.ci_tools import run_module
from support.fake_index import (
    FakeBuild,
    Served,
    build_wheel,
    isolated_env,
    serve_fake_index,
    write_index,
)

from envsetup.detect import detect
from envsetup.detect.host import current_platform
from envsetup.integrations.cells import Cell, cells, missing_hardware

ROOT = Path(__file__).resolve().parents[2]
PY = f"{sys.version_info.major}.{sys.version_info.minor}"
PLATFORM = current_platform().key


def _nox(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    noxfile = str(ROOT / "noxfile.py")
    return run_module("nox", "-f", noxfile, *args, cwd=ROOT, env=isolated_env(env))


def _listed(env: Mapping[str, str] | None = None) -> dict[str, dict[str, object]]:
    result = _nox("-l", "--json", "-s", "tests", "lint", "verify", env=env)  # all, not defaults
    assert result.returncode == 0, result.stderr
    return {item["session"]: item for item in json.loads(result.stdout)}


def test_lists_tests_lint_and_one_verify_session_per_cell() -> None:
    listed = _listed()
    found = [v for v in ("3.9", "3.10", "3.11", "3.12", "3.13") if shutil.which(f"python{v}")]
    assert {name for name in listed if name.startswith("tests")} == {
        f"tests-{version}" for version in found
    }
    assert "lint" in listed
    expected = cells(platform=PLATFORM)
    verify = {name: item for name, item in listed.items() if name.startswith("verify(")}
    assert set(verify) == {cell.session() for cell in expected}
    for cell in expected[:50]:
        item = verify[cell.session()]
        assert item["python"] == cell.python
        assert set(item["tags"]) == {cell.tag, cell.runner}  # type: ignore[arg-type]


def test_plain_nox_runs_tests_and_lint_not_the_cells() -> None:
    result = _nox("-l", env={"ENVSETUP_NEWEST": "1", "ENVSETUP_VARIANTS": "cpu"})
    assert result.returncode == 0, result.stderr
    listing = [line for line in result.stdout.splitlines() if line[:2] in ("* ", "- ")]
    assert {line.split()[1] for line in listing if line.startswith("* ")} >= {"lint"}
    cells_listed = [line for line in listing if line[2:].startswith("verify(")]
    assert cells_listed and all(line.startswith("- ") for line in cells_listed)


def test_environment_filters_narrow_the_cells() -> None:
    env = {"ENVSETUP_NEWEST": "2", "ENVSETUP_VARIANTS": "cpu,cuda", "ENVSETUP_PYTHON": "3.12"}
    listed = _listed(env)
    expected = cells(platform=PLATFORM, newest=2, variants="cpu,cuda", python="3.12")
    assert expected
    assert {name for name in listed if name.startswith("verify(")} == {
        cell.session() for cell in expected
    }


def test_a_bad_filter_stops_nox_with_the_reason() -> None:
    result = _nox("-l", env={"ENVSETUP_NEWEST": "latest"})
    assert result.returncode != 0
    assert "ENVSETUP_NEWEST='latest': expected a positive number of releases" in (
        result.stdout + result.stderr
    )


# --------------------------------------------------------------------------- cells run for real


def _wheel_of_installed(name: str, dest: Path) -> Path:
    """A wheel rebuilt from an installed pure-Python distribution (the cell needs pytest, and
    the tests must not download it)."""
    dist = importlib.metadata.distribution(name)
    files = {
        str(item): dist.locate_file(item).read_text()
        for item in dist.files or ()
        if not str(item).startswith("..")
        and ".dist-info" not in str(item)
        and "__pycache__" not in str(item)
    }
    entry_points = dist.read_text("entry_points.txt")
    if entry_points:  # console scripts: a recipe's `commands = pytest` needs bin/pytest
        stem = re.sub(r"[-_.]+", "_", dist.metadata["Name"])
        files[f"{stem}-{dist.version}.dist-info/entry_points.txt"] = entry_points
    requires = [req for req in dist.requires or () if "extra ==" not in req]
    return build_wheel(dest, dist.metadata["Name"], dist.version, files, requires)


def _wheelhouse_for(root: str, dest: Path) -> Path:
    """`root` and its dependencies for this interpreter, rebuilt as wheels into `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    todo, done = [root], set()
    while todo:
        name = todo.pop()
        if name in done:
            continue
        done.add(name)
        dist = importlib.metadata.distribution(name)
        _wheel_of_installed(name, dest)
        for line in dist.requires or ():
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return dest


@pytest.fixture(scope="module")
def support(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _wheelhouse_for("pytest", tmp_path_factory.mktemp("support-wheels"))


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    builds = [FakeBuild("2.5.1", "cpu", torchvision=None, torchaudio=None)]
    builds.append(FakeBuild("2.5.1", "cu121", torchvision=None, torchaudio=None))
    with serve_fake_index(builds) as index:
        yield index


def _cell_env(index_url: str, support: Path, nothing: str, **extra: str) -> dict[str, str]:
    """Torch from the mirror, pytest from the support wheels, any other lookup finds nothing."""
    return {
        "ENVSETUP_INDEX_URL": index_url,
        "ENVSETUP_ALLOW_INSECURE_INDEX": "1",
        "ENVSETUP_TORCH": "2.5.1",
        "PIP_FIND_LINKS": str(support),
        "UV_FIND_LINKS": str(support),
        "PIP_INDEX_URL": nothing,
        "UV_INDEX_URL": nothing,
        **extra,
    }


def _run_cell(cell: Cell, env: Mapping[str, str], tmp: Path, *posargs: str) -> str:
    args = ["--envdir", str(tmp / "nox"), "-s", cell.session()]
    result = _nox(*args, *(["--", *posargs] if posargs else []), env=env)
    output = result.stdout + result.stderr
    return f"exit {result.returncode}\n{output}"


@pytest.mark.slow
def test_cpu_cell_installs_verifies_and_runs_the_cell_suite(
    served: Served, support: Path, tmp_path: Path
) -> None:
    cell = Cell(PY, "2.5.1", "cpu")
    env = _cell_env(served.url, support, f"{served.url}/nothing-here/")
    output = _run_cell(cell, env, tmp_path)
    assert output.startswith("exit 0"), output
    assert f"--index-url {served.url}/cpu torch==2.5.1+cpu" in output
    assert re.search(r"ok +expect +torch 2\.5\.1\+cpu", output), output  # envsetup verify
    assert re.search(r"all \d+ checks passed", output), output
    assert re.search(r"=+ 2 passed, 1 skipped", output), output  # the cell suite; gpu skipped
    assert f"Session {cell.session()} was successful" in output


@pytest.mark.slow
def test_gpu_cell_without_the_gpu_skips_fails_or_checks_the_build(
    served: Served, support: Path, tmp_path: Path
) -> None:
    cell = Cell(PY, "2.5.1", "cu121", platform=PLATFORM)
    if missing_hardware(cell, detect()) is None:
        pytest.skip("this machine can run the cu121 cell for real")
    env = _cell_env(served.url, support, f"{served.url}/nothing-here/")
    skipped = _run_cell(cell, env, tmp_path)
    assert skipped.startswith("exit 0"), skipped
    assert f"Session {cell.session()} skipped: {cell.session()} needs an NVIDIA GPU" in skipped
    required = _run_cell(cell, {**env, "ENVSETUP_MISSING_HARDWARE": "fail"}, tmp_path)
    assert required.startswith("exit 1"), required
    assert "needs an NVIDIA GPU" in required and "(--missing-hardware fail)" in required
    checked = _run_cell(cell, env, tmp_path, "--missing-hardware", "run")
    assert checked.startswith("exit 0"), checked
    assert f"--index-url {served.url}/cu121 torch==2.5.1+cu121" in checked


@pytest.mark.slow
def test_the_plugins_gpu_words_do_not_steer_a_cell(
    served: Served, support: Path, tmp_path: Path
) -> None:
    """ENVSETUP_GPU / --envsetup-gpu belong to the pytest plugin: the noxfile neither reads the
    variable nor takes `-- --gpu`, which says what replaced it."""
    cell = Cell(PY, "2.5.1", "cu121", platform=PLATFORM)
    if missing_hardware(cell, detect()) is None:
        pytest.skip("this machine can run the cu121 cell for real")
    env = _cell_env(served.url, support, f"{served.url}/nothing-here/")
    plugin_only = _run_cell(cell, {**env, "ENVSETUP_GPU": "require"}, tmp_path)
    assert plugin_only.startswith("exit 0"), plugin_only
    assert f"Session {cell.session()} skipped" in plugin_only
    renamed = _run_cell(cell, env, tmp_path, "--gpu", "ignore")
    assert renamed.startswith("exit 1"), renamed
    assert "`-- --gpu` was renamed `-- --missing-hardware skip|fail|run`" in renamed
    unknown = _run_cell(cell, {**env, "ENVSETUP_MISSING_HARDWARE": "ignore"}, tmp_path)
    assert unknown.startswith("exit 1"), unknown
    assert "--missing-hardware 'ignore': expected one of skip, fail, run" in unknown


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("ENVSETUP_TEST_WHEELHOUSE"),
    reason="set ENVSETUP_TEST_WHEELHOUSE to a directory from "
    "`pip download torch==2.13.0+cpu --index-url https://download.pytorch.org/whl/cpu -d DIR` "
    "to run the real CPU torch cell",
)
@pytest.mark.skipif(not shutil.which("python3.11"), reason="the real torch cell needs Python 3.11")
def test_real_cpu_torch_cell_from_a_local_mirror(support: Path, tmp_path: Path) -> None:
    wheelhouse = Path(os.environ["ENVSETUP_TEST_WHEELHOUSE"])
    wheels = sorted(wheelhouse.glob("*.whl"))
    assert any(w.name.startswith("torch-2.13.0+cpu-cp311") for w in wheels), wheels
    mirror = write_index(tmp_path / "mirror", {"cpu": wheels}).root  # linked: torch is 190 MB
    nothing = (tmp_path / "nothing").as_uri()
    (tmp_path / "nothing").mkdir()
    cell = Cell("3.11", "2.13.0", "cpu")
    env = _cell_env(mirror.as_uri(), support, nothing, ENVSETUP_TORCH="2.13.0")
    output = _run_cell(cell, env, tmp_path)
    assert output.startswith("exit 0"), output
    assert re.search(r"ok +round_trip:cpu", output), output  # envsetup verify, real torch
    assert re.search(r"all \d+ checks passed", output), output
    assert re.search(r"=+ 2 passed, 1 skipped", output), output  # the cell suite
    assert f"Session {cell.session()} was successful" in output
