"""The tox plugin: factor names → settings, and real tox runs against the 127.0.0.1 fake index."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.ci_tools import mirror_env, run_module
from support.fake_index import FakeBuild, Served, build_wheel, serve_fake_index

from envsetup.integrations.tox_plugin import TorchSettings, companions_in, settings_from_factors

PY = f"py{sys.version_info.major}{sys.version_info.minor}"
BUILDS = [FakeBuild("2.5.1", "cu121"), FakeBuild("2.5.1", "cpu")]


@pytest.mark.parametrize(
    ("env_name", "expected"),
    [
        ("py311-torch25-cu121", TorchSettings(torch="2.5", backend="cu121")),
        ("py312-torch2.5.1-cpu", TorchSettings(torch="2.5.1", backend="cpu")),
        ("torch210-rocm6.2.4", TorchSettings(torch="2.10", backend="rocm6.2.4")),
        ("py39-torch2-xpu", TorchSettings(torch="==2.*", backend="xpu")),
        ("py311-cu118-torch113", TorchSettings(torch="1.13", backend="cu118")),
        ("py311-cpu", TorchSettings(backend="cpu")),  # a backend alone does not switch it on
        ("lint", TorchSettings()),
        ("py311-torchvision-cuda", TorchSettings()),  # not a torch or variant factor
    ],
)
def test_factors_map_onto_settings(env_name: str, expected: TorchSettings) -> None:
    assert settings_from_factors(env_name) == expected


def test_only_a_torch_setting_switches_the_plugin_on() -> None:
    assert settings_from_factors("py311-torch25").active
    assert not settings_from_factors("py311-cpu").active


def test_companions_found_in_deps_skip_options_paths_and_others() -> None:
    deps = ["pytest>=8", "TorchVision", "-r requirements.txt", "./local", "torch==2.5.1", "numpy"]
    assert companions_in(deps) == ("torchvision",)
    assert companions_in(["torchaudio", "torchvision", "torchaudio"]) == (
        "torchaudio",
        "torchvision",
    )


# --------------------------------------------------------------------------- real tox runs

_PRINT = (
    "import torch, otherpkg; "
    "print('BUILD', torch.__version__, torch.version.cuda, "
    "__import__('torchvision').__version__)"
)


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with serve_fake_index(BUILDS) as index:
        yield index


@pytest.fixture
def project(tmp_path: Path, served: Served) -> Path:
    """A tox project whose only other dep needs torch and whose default index has nothing: it
    installs only if torch was installed first, from the plugin's index."""
    wheel = build_wheel(tmp_path, "otherpkg", "1.0", {"otherpkg/__init__.py": ""}, ["torch"])
    (tmp_path / "tox.ini").write_text(
        f"""\
[tox]
env_list = {PY}-torch25-cu121

[testenv]
package = skip
# envsetup's own install is tests/integration/test_recipes.py's; this index has no `packaging`
install_envsetup = false
# pyenv's shims find a non-default Python only through PYENV_VERSION, which tox filters out
pass_env = PYENV_VERSION
deps =
    otherpkg @ {wheel.as_uri()}
    torchvision
set_env =
    PIP_INDEX_URL = {served.url}/nothing-here/
    UV_INDEX_URL = {served.url}/nothing-here/
commands = python -c "{_PRINT}"
"""
    )
    return tmp_path


def _tox(
    project: Path, served: Served, *args: str, extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    config = str(project / "tox.ini")
    env = mirror_env(served.url, extra)
    return run_module("tox", "-c", config, "-v", *args, cwd=project, env=env)


def _lines(output: str, marker: str) -> list[str]:
    return [line for line in output.splitlines() if marker in line]


@pytest.mark.slow
@pytest.mark.parametrize("runner", ["virtualenv", "uv-venv-runner"])
def test_torch_family_installs_first_from_the_variant_index(
    project: Path, served: Served, runner: str
) -> None:
    if runner.startswith("uv"):
        pytest.importorskip("tox_uv", reason="tox-uv is in the test extra")
    # tox passes PIP_* (and tox-uv UV_DEFAULT_INDEX) through; before the plugin left them out of
    # its install, this other variant's index was read (pip) or replaced the planned one and the
    # cu121 pins failed (uv)
    variable = "UV_DEFAULT_INDEX" if runner.startswith("uv") else "PIP_Extra_Index_Url"
    seen = len(served.requests)
    result = _tox(
        project, served, "-e", f"{PY}-torch25-cu121", "--runner", runner,
        extra={variable: f"{served.url}/cpu"},
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert f"envsetup: ignoring {variable}" in output
    if runner == "virtualenv":  # tox's own uv deps step re-resolves torchvision through it
        assert not [path for path in served.requests[seen:] if path.startswith("/cpu")]
    # the build from the cu121 index, with the paired torchvision found in deps
    assert "BUILD 2.5.1+cu121 12.1 0.20.1+cu121" in output
    torch_install = _lines(output, "install_torch>")
    deps_install = _lines(output, "install_deps>")
    assert len(torch_install) == 1 and deps_install, output
    assert (
        f"--index-url {served.url}/cu121 torch==2.5.1+cu121 torchvision==0.20.1+cu121"
        in (torch_install[0])
    )
    assert output.index("install_torch>") < output.index("install_deps>")
    assert "install_envsetup>" not in output  # turned off in this tox.ini
    assert "--extra-index-url" not in output
    wheels = [path for path in served.requests[seen:] if path.endswith(".whl")]
    assert wheels and all(path.startswith("/cu121/") for path in wheels), wheels


@pytest.mark.slow
def test_rerun_is_cached_and_a_changed_setting_reinstalls(project: Path, served: Served) -> None:
    env_name = f"{PY}-torch25-cu121"
    first = _tox(project, served, "-e", env_name, "--runner", "virtualenv")
    assert first.returncode == 0, first.stdout + first.stderr
    again = _tox(project, served, "-e", env_name, "--runner", "virtualenv")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "install_torch>" not in again.stdout
    # an explicit setting beats the factor
    config = project / "tox.ini"
    config.write_text(
        config.read_text().replace("package = skip", "package = skip\ntorch_backend = cpu")
    )
    switched = _tox(project, served, "-e", env_name, "--runner", "virtualenv")
    output = switched.stdout + switched.stderr
    assert switched.returncode == 0, output
    assert f"--index-url {served.url}/cpu torch==2.5.1+cpu" in output
    assert "BUILD 2.5.1+cpu None 0.20.1+cpu" in output


@pytest.mark.slow
def test_env_without_torch_is_left_alone_and_refusals_are_one_message(
    tmp_path: Path, served: Served
) -> None:
    (tmp_path / "tox.ini").write_text(
        f"""\
[tox]
env_list = {PY}-cpu, {PY}-torch1.12.0-cu130

[testenv]
package = skip
commands = python -c "print('RAN')"
"""
    )
    plain = _tox(tmp_path, served, "-e", f"{PY}-cpu", "--runner", "virtualenv")
    assert plain.returncode == 0, plain.stdout + plain.stderr
    # No message of the plugin's ("envsetup: ..."); paths may hold "envsetup" (the checkout's
    # folder is often named so, with its venv inside).
    assert "RAN" in plain.stdout and "envsetup:" not in plain.stdout
    refused = _tox(tmp_path, served, "-e", f"{PY}-torch1.12.0-cu130", "--runner", "virtualenv")
    output = refused.stdout + refused.stderr
    assert refused.returncode != 0
    assert f"envsetup: {PY}-torch1.12.0-cu130:" in output
    assert "cu130" in output and "Traceback" not in output and "RAN" not in output
