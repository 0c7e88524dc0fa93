"""No torch-family package is ever routed through an extra index, whatever produces the command.

An extra index lets a same-named package from another index win (the December 2022 torchtriton
compromise; uv even prefers extra indexes to --index-url). tests/unit/resolve/test_resolve.py checks
every
matrix cell through every renderer in the POSIX shell. Here, over every cell again: the other
shells, flat find-links mirrors, the argv the executors run (install, venv) and the options nox
and tox are handed (`install_options`), and, for real, the installer's environment: an
inherited extra index, uv default index or find-links location (envsetup.install.isolation) is
dropped
before pip or uv runs; tests/unit/install/test_installer_isolation.py checks every spelling and
config file.
"""

from __future__ import annotations

import io
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.fake_index import (
    FakeBuild,
    Served,
    build_wheel,
    isolated_env,
    run_envsetup,
    serve_fake_index,
    serve_index,
    uv_executable,
    write_index,
)
from unit.resolve.test_resolve import CELLS

from envsetup.errors import EnvsetupError
from envsetup.install import isolation
from envsetup.install.argv import install_argv, install_options
from envsetup.install.isolation import UV_ROUTING
from envsetup.install.render import FORMATS, SHELLS, command_lines, render
from envsetup.install.run import installer_argv, run_step
from envsetup.matrices import load
from envsetup.model.machine import Machine, Platform
from envsetup.model.plan import TORCH_FAMILY, Plan, Request
from envsetup.resolve import resolve

MATRICES = load()
MIRROR = "https://mirror.example/whl"


def plans(**request: str) -> Iterator[Plan]:
    """The plan of every matrix cell, with both companions where the release has them."""
    for torch, platform, variant, python in CELLS:
        os_name, _, arch = platform.partition("-")
        release = MATRICES.release(torch)
        assert release is not None
        with_ = tuple(n for n in ("torchvision", "torchaudio") if getattr(release, n))
        machine = Machine(platform=Platform(os_name, arch, python))
        yield resolve(machine, Request(torch=torch, backend=variant, with_=with_, **request))


def assert_only_planned_sources(argv: list[str], plan: Plan) -> None:
    """Exactly the plan's one source (or PyPI alone), and every torch-family name pinned."""
    assert not any("extra-index" in arg or "extra_index" in arg for arg in argv), argv
    if plan.find_links is not None:
        assert argv.count("--no-index") == 1 and argv.count("--find-links") == 1
        assert argv[argv.index("--find-links") + 1] == plan.find_links
        assert "--index-url" not in argv
    elif plan.index_url is not None:
        assert argv.count("--index-url") == 1
        assert argv[argv.index("--index-url") + 1] == plan.index_url
    else:
        assert "--index-url" not in argv and "--find-links" not in argv
    family = [arg for arg in argv if arg.partition("==")[0] in TORCH_FAMILY]
    assert family == list(plan.packages) and all("==" in arg for arg in family)


def test_every_cell_in_every_shell_and_format_including_flat_mirrors() -> None:
    checked = 0
    for request in ({}, {"index_url_base": MIRROR}, {"find_links_base": MIRROR}):
        for plan in plans(**request):
            for fmt in FORMATS:
                for shell in SHELLS:
                    try:
                        text = render(plan, fmt, shell) + "\n".join(command_lines(plan, fmt, shell))
                    except EnvsetupError as error:  # poetry has no flat find-links source
                        assert "find-links" in str(error) and plan.find_links is not None
                        continue
                    assert "extra-index" not in text and "extra_index" not in text, text
                    checked += 1
            posix = shlex.split(command_lines(plan, "pip")[0])
            assert_only_planned_sources(posix, plan)
    assert checked > 3 * len(CELLS) * 10


def test_the_announced_source_is_the_one_the_installer_is_given() -> None:
    """`install`, nox and tox say where torch comes from (Plan.source): with a flat mirror the
    installer gets only the find-links directory (--no-index), so that is what users are told."""
    for request in ({}, {"find_links_base": MIRROR}):
        for plan in plans(**request):
            argv = install_argv(plan)
            flag = next((f for f in ("--find-links", "--index-url") if f in argv), None)
            assert plan.source == (argv[argv.index(flag) + 1] if flag else "PyPI"), argv


@pytest.mark.parametrize("installer", ["pip", pytest.param("uv", marks=pytest.mark.uv)])
def test_every_cell_executor_argv_and_nox_tox_options(installer: str) -> None:
    """What install/venv run (installer_argv), and what nox's session.install and tox's
    install_command receive (install_options), reinstalling or not."""
    for request in ({}, {"find_links_base": MIRROR}):
        for plan in plans(**request):
            for reinstall in (False, True):
                argv = install_argv(plan, installer=installer, python="py", reinstall=reinstall)
                assert_only_planned_sources(argv, plan)
                options = install_options(plan, installer=installer, reinstall=reinstall)
                assert argv[-len(options) :] == options
            assert_only_planned_sources(
                installer_argv(plan, installer=installer, python="py"), plan
            )


def test_the_installer_never_inherits_an_extra_index(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(isolation, "_TOLD", set())  # a notice is said once per process
    routing = ("PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", *UV_ROUTING)
    for name in routing:
        monkeypatch.setenv(name, "https://evil.example/simple")
    monkeypatch.setenv("PIP_DEFAULT_TIMEOUT", "60")  # everything else passes through
    out = io.StringIO()
    run_step("install", ["sh", "-c", "env"], out=out)
    seen = out.getvalue()
    assert "evil.example" not in seen.split("$ ", 1)[1]
    assert "PIP_DEFAULT_TIMEOUT=60" in seen
    assert all(name in seen.split("$ ", 1)[0] for name in routing)


@pytest.fixture(scope="module")
def indexes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, Served]]:
    """The planned index, and an attacker's with a torch of the very same version and label."""
    root = tmp_path_factory.mktemp("evil")
    (root / "wheels").mkdir()
    evil = build_wheel(root / "wheels", "torch", "2.5.1+cpu", {"torch/__init__.py": "EVIL = 1\n"})
    write_index(root / "index", {"cpu": [evil]})
    with serve_fake_index([FakeBuild("2.5.1", "cpu")]) as good, serve_index(root / "index") as bad:
        yield good, bad


@pytest.mark.parametrize(
    ("installer", "variable", "where"),
    [
        ("uv", "UV_EXTRA_INDEX_URL", "/cpu"),
        ("uv", "UV_INDEX", "/cpu"),
        ("uv", "UV_DEFAULT_INDEX", "/cpu"),  # beats --index-url in uv 0.13.9
        ("uv", "UV_INDEX_URL", "/cpu"),
        ("uv", "UV_FIND_LINKS", "/cpu/torch/"),
        ("pip", "PIP_EXTRA_INDEX_URL", "/cpu"),
        ("pip", "PIP_FIND_LINKS", "/cpu/torch/"),
        ("pip", "PIP_Extra_Index_Url", "/cpu"),  # pip reads any spelling after PIP_
        ("pip", "PIP_find-links", "/cpu/torch/"),
    ],
)
def test_an_inherited_package_source_never_supplies_torch(
    tmp_path: Path, indexes: tuple[Served, Served], installer: str, variable: str, where: str
) -> None:
    """Before the fix uv took the attacker's torch-2.5.1+cpu from an extra or default index, and
    pip read the attacker's find-links page next to the planned index."""
    if installer == "uv":
        uv_executable()  # skips where there is none
    good, bad = indexes
    bad.requests.clear()
    target = tmp_path / "env"
    result = run_envsetup(
        "venv", str(target), "--installer", installer, "--torch", "2.5.1", "--gpu", "none",
        "--index-url-base", good.url, "--allow-insecure-index",
        env=isolated_env({variable: f"{bad.url}{where}"}),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"envsetup: ignoring {variable}" in result.stderr
    assert bad.requests == []
    check = subprocess.run(
        [str(target / "bin" / "python"), "-c", "import torch; print(hasattr(torch, 'EVIL'))"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert check.stdout.strip() == "False"
