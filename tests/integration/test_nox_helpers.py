"""`envsetup.nox`: real nox runs of a user's noxfile against the 127.0.0.1 fake index."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.ci_tools import mirror_env, run_module
from support.fake_index import FakeBuild, Served, serve_fake_index

from envsetup.integrations.cells import cells as matrix_cells

ROOT = Path(__file__).resolve().parents[2]

NOXFILE = """\
from __future__ import annotations

import nox

import envsetup.nox

PRINT = (
    "import torch, torchvision; "
    "print('BUILD', torch.__version__, torch.version.cuda, torchvision.__version__)"
)


@nox.session(venv_backend="virtualenv")
def with_pip(session):
    envsetup.nox.install_torch(session, torch="2.5.1", backend="cu121", with_=["torchvision"])
    session.run("python", "-c", PRINT)


@nox.session(venv_backend="uv")
def with_uv(session):
    plan = envsetup.nox.install_torch(session, torch="2.5", backend="cpu", with_=["torchvision"])
    session.log("PLAN " + " ".join(plan.packages))
    session.run("python", "-c", PRINT)


@nox.session(venv_backend="uv")
def refused(session):
    envsetup.nox.install_torch(session, torch="1.12.0", backend="cu130")


@nox.session
@nox.parametrize(
    "python,torch,variant", envsetup.nox.cells(torch="2.5.1", python="3.11", variants="cpu,cuda")
)
def cell(session, torch, variant):
    pass
"""


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with serve_fake_index([FakeBuild("2.5.1", "cu121"), FakeBuild("2.5.1", "cpu")]) as index:
        yield index


@pytest.fixture
def noxfile(tmp_path: Path) -> Path:
    path = tmp_path / "noxfile.py"
    path.write_text(NOXFILE)
    return path


def _nox(
    noxfile: Path, served: Served, *args: str, extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = mirror_env(served.url, extra)
    return run_module("nox", "-f", str(noxfile), *args, cwd=noxfile.parent, env=env)


@pytest.mark.slow
def test_install_torch_with_pip_venv_uses_only_the_variant_index(
    noxfile: Path, served: Served
) -> None:
    """Also with an inherited extra index and find-links page offering the cpu build: before
    install_torch left them out, pip read them next to the planned cu121 index."""
    seen = len(served.requests)
    hostile = {"PIP_Extra_Index_Url": f"{served.url}/cpu", "PIP_find_links": f"{served.url}/cpu/"}
    result = _nox(noxfile, served, "-s", "with_pip", extra=hostile)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "envsetup: ignoring PIP_Extra_Index_Url, PIP_find_links" in output
    assert not [path for path in served.requests[seen:] if path.startswith("/cpu")]
    assert "BUILD 2.5.1+cu121 12.1 0.20.1+cu121" in output  # torchvision by default
    assert (
        f"pip install --index-url {served.url}/cu121 torch==2.5.1+cu121 torchvision==0.20.1+cu121"
        in output
    )
    assert "--extra-index-url" not in output
    wheels = [path for path in served.requests[seen:] if path.endswith(".whl")]
    assert sorted(path.split("/")[1] for path in wheels) == ["cu121", "cu121"]


@pytest.mark.slow
@pytest.mark.uv
def test_install_torch_with_uv_venv(noxfile: Path, served: Served) -> None:
    """UV_DEFAULT_INDEX beats uv's --index-url flag: install_torch leaves it out."""
    seen = len(served.requests)
    result = _nox(
        noxfile, served, "-s", "with_uv", extra={"UV_DEFAULT_INDEX": f"{served.url}/cu121"}
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "envsetup: ignoring UV_DEFAULT_INDEX" in output
    assert not [path for path in served.requests[seen:] if path.startswith("/cu121")]
    assert "uv pip install --index-url" in output and f"{served.url}/cpu" in output
    assert "PLAN torch==2.5.1+cpu torchvision==0.20.1+cpu" in output
    assert "BUILD 2.5.1+cpu None 0.20.1+cpu" in output


@pytest.mark.slow
@pytest.mark.uv
def test_a_refused_plan_fails_the_session_with_the_planners_message(
    noxfile: Path, served: Served
) -> None:
    result = _nox(noxfile, served, "-s", "refused")
    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert "Session refused aborted: envsetup: " in output and "cu130" in output
    assert "hint: " in output
    assert "Traceback" not in output


def test_cells_parametrize_a_session_with_ids_and_tags(noxfile: Path, served: Served) -> None:
    result = _nox(noxfile, served, "-l", "--json")
    assert result.returncode == 0, result.stderr
    listed = {item["session"]: item for item in json.loads(result.stdout)}
    expected = matrix_cells(torch="2.5.1", python="3.11", variants="cpu,cuda")
    assert expected
    for cell in expected:
        item = listed[cell.session("cell")]
        assert item["python"] == "3.11"
        assert item["call_spec"] == {"torch": "2.5.1", "variant": cell.variant}
        assert set(item["tags"]) == {cell.tag, cell.runner}
    assert len([name for name in listed if name.startswith("cell(")]) == len(expected)


def test_importing_the_integrations_imports_neither_nox_tox_nor_torch() -> None:
    code = (
        "import sys, envsetup.nox, envsetup.integrations.tox_plugin, "
        "envsetup.integrations.cells, envsetup.integrations.ci_export; "
        "print(sorted({'nox', 'tox', 'torch'} & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"
