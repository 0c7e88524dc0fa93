"""`envsetup venv`: real venv/pip/uv against the fake index; all or nothing on disk."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.fake_index import (
    CPU_BUILDS,
    Served,
    index_fixture,
    isolated_env,
    run_envsetup,
    serve_fake_index,
    uv_executable,
)

index = index_fixture(CPU_BUILDS)


def request(index: Served, *extra: str) -> list[str]:
    return ["--gpu", "none", *index.flags, *extra]


def snapshot(root: Path) -> dict[str, str]:
    """Every path under `root` with its kind and content hash: "the disk as it was"."""
    tree: dict[str, str] = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(directory, name)
            key = path.relative_to(root).as_posix()
            if path.is_symlink():
                tree[key] = "link:" + os.readlink(path)
            elif path.is_dir():
                tree[key] = "dir"
            else:
                tree[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return tree


def uv_venv(path: Path, env: dict[str, str]) -> None:
    """An existing environment for the --force cases, with a file the user cares about."""
    uv = uv_executable()
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(path)], env=env, check=True)
    (path / "notes.txt").write_text("user data\n")


def site_torch(path: Path) -> list[str]:
    site = next((path / "lib").glob("python3*/site-packages"))
    return sorted(p.name for p in site.glob("torch*.dist-info"))


@pytest.mark.slow
def test_fresh_venv_with_pip_installs_verifies_and_says_how_to_activate(
    tmp_path: Path, index: Served, env: dict[str, str]
) -> None:
    target = tmp_path / "env"
    result = run_envsetup(
        "venv", str(target), "--torch", "2.5.1", "--with", "torchvision", *request(index), env=env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "-m pip install --index-url " + index.url + "/cpu" in result.stderr
    assert "Successfully installed torch-2.5.1+cpu torchvision-0.20.1+cpu" in result.stderr
    assert "all 7 checks passed" in result.stderr
    assert result.stdout == f". {target}/bin/activate\n"  # the artefact: how to activate it
    assert site_torch(target) == ["torch-2.5.1+cpu.dist-info", "torchvision-0.20.1+cpu.dist-info"]
    assert any(path.endswith("/cpu/torch/") for path in index.requests)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["env"]  # nothing aside, no temp dirs


@pytest.mark.uv
def test_fresh_venv_with_uv(tmp_path: Path, index: Served, env: dict[str, str]) -> None:
    target = tmp_path / "env"
    result = run_envsetup(
        "venv", str(target), "--installer", "uv", "--torch", "2.5.1", *request(index), env=env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "uv venv --python" in result.stderr and "uv pip install --python" in result.stderr
    assert site_torch(target) == ["torch-2.5.1+cpu.dist-info"]
    check = subprocess.run(
        [str(target / "bin" / "python"), "-c", "import torch; print(torch.__version__)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert check.stdout.strip() == "2.5.1+cpu"


@pytest.mark.slow
def test_missing_wheel_pip_fails_and_nothing_is_left(
    tmp_path: Path, index: Served, env: dict[str, str]
) -> None:
    target = tmp_path / "deep" / "env"
    before = snapshot(tmp_path)
    result = run_envsetup(
        "venv", str(target), "--torch", "2.5.0", "--with", "torchaudio", *request(index), env=env
    )
    assert result.returncode == 1
    assert snapshot(tmp_path) == before  # not even the parent directory it had to create
    assert "step 'install' failed" in result.stderr
    assert "ERROR: No matching distribution found for torchaudio==2.5.0+cpu" in result.stderr
    assert "hint: the index has no wheel matching" in result.stderr
    assert f"{target}: nothing was left" in result.stderr
    assert "Traceback" not in result.stderr


def test_existing_non_empty_path_is_refused(tmp_path: Path, index: Served, env: dict) -> None:
    target = tmp_path / "project"
    target.mkdir()
    (target / "main.py").write_text("print('mine')\n")
    before = snapshot(tmp_path)
    result = run_envsetup("venv", str(target), "--torch", "2.5.1", *request(index), env=env)
    assert result.returncode == 1
    assert f"{target} exists and is not empty" in result.stderr
    assert "--force" in result.stderr
    assert snapshot(tmp_path) == before
    assert index.requests == [] or all("project" not in path for path in index.requests)


def test_force_never_replaces_a_directory_that_is_not_an_environment(
    tmp_path: Path, index: Served, env: dict[str, str]
) -> None:
    target = tmp_path / "project"
    target.mkdir()
    (target / "main.py").write_text("print('mine')\n")
    before = snapshot(tmp_path)
    result = run_envsetup("venv", str(target), "--force", *request(index), env=env)
    assert result.returncode == 1
    assert "is not a virtual environment (no pyvenv.cfg)" in result.stderr
    assert snapshot(tmp_path) == before


@pytest.mark.uv
def test_force_puts_the_old_environment_back_when_the_install_fails(
    tmp_path: Path, index: Served, env: dict[str, str]
) -> None:
    target = tmp_path / "env"
    uv_venv(target, env)
    before = snapshot(tmp_path)
    result = run_envsetup(
        "venv",
        str(target),
        "--force",
        "--installer",
        "uv",
        "--torch",
        "2.5.0",
        "--with",
        "torchaudio",
        *request(index),
        env=env,
    )
    assert result.returncode == 1
    assert snapshot(tmp_path) == before
    assert "step 'install' failed" in result.stderr and "torchaudio" in result.stderr
    assert "the old environment is back in place" in result.stderr


@pytest.mark.uv
def test_force_replaces_the_old_environment_once_the_new_one_verifies(
    tmp_path: Path, index: Served, env: dict[str, str]
) -> None:
    target = tmp_path / "env"
    uv_venv(target, env)
    result = run_envsetup(
        "venv", str(target), "--force", "--installer", "uv", "--torch", "2.5.1", *request(index),
        env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert not (target / "notes.txt").exists()
    assert site_torch(target) == ["torch-2.5.1+cpu.dist-info"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["env"]


@pytest.mark.uv
def test_an_empty_directory_is_used_and_restored_on_failure(
    tmp_path: Path, index: Served, env: dict[str, str]
) -> None:
    target = tmp_path / "env"
    target.mkdir(mode=0o750)
    before = snapshot(tmp_path)
    failed = run_envsetup(
        "venv", str(target), "--installer", "uv", "--torch", "2.5.0", "--with", "torchaudio",
        *request(index), env=env,
    )  # fmt: skip
    assert failed.returncode == 1
    assert snapshot(tmp_path) == before
    assert target.stat().st_mode & 0o777 == 0o750


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "installer", "existing"),
    [(signal.SIGINT, "pip", False), pytest.param(signal.SIGTERM, "uv", True, marks=pytest.mark.uv)],
    ids=["sigint-pip-new", "sigterm-uv-force"],
)
def test_interrupted_install_leaves_the_disk_as_before(
    tmp_path: Path, env: dict[str, str], signum: int, installer: str, existing: bool
) -> None:
    target = tmp_path / "env"
    if existing:
        uv_venv(target, env)
    before = snapshot(tmp_path)
    with serve_fake_index(CPU_BUILDS, slow={"/torch-": 120}) as slow:
        argv = [sys.executable, "-m", "envsetup", "venv", str(target), "--installer", installer]
        argv += ["--torch", "2.5.1", *request(slow), *(["--force"] if existing else [])]
        process = subprocess.Popen(
            argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            assert slow.slow_hit.wait(60), "the installer never started downloading torch"
            assert target.exists()  # mid-install: the new environment is half built
            process.send_signal(signum)
            stdout, stderr = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
    assert process.returncode == 130, stdout + stderr
    assert "interrupted during step 'install'" in stderr
    assert snapshot(tmp_path) == before


@pytest.mark.slow
def test_python_version_picks_that_interpreter(tmp_path: Path, index: Served) -> None:
    env = isolated_env({"PYENV_VERSION": "3.12.1:3.11.7"})
    if shutil.which("python3.12", path=env["PATH"]) is None:
        pytest.skip("no python3.12 on PATH")
    target = tmp_path / "env312"
    result = run_envsetup(
        "venv", str(target), "--python", "3.12", "--torch", "2.5.1", *request(index), env=env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(Python 3.12." in result.stderr
    assert [p.name for p in (target / "lib").iterdir()] == ["python3.12"]


# --- Rollback that cannot lose data: each case below deleted or emptied the old environment,
# --- or failed outright, before envsetup/install/venv.py kept its bookkeeping after each change.

FAILING = ("--installer", "uv", "--torch", "2.5.0", "--with", "torchaudio")  # no such wheel


def tag(target: Path) -> str:
    """The short name envsetup gives `target`'s aside, trash and lock (docs/reliability.md)."""
    return hashlib.sha256(os.fsencode(target.name)).hexdigest()[:10]


@pytest.mark.uv
def test_force_on_a_240_character_name_keeps_the_old_environment(
    tmp_path: Path, index: Served, env: dict[str, str]
) -> None:
    target = tmp_path / ("e" * 240)  # `.NAME.envsetup-old-PID` did not fit: ENAMETOOLONG
    uv_venv(target, env)
    before = snapshot(tmp_path)
    result = run_envsetup("venv", str(target), "--force", *FAILING, *request(index), env=env)
    assert result.returncode == 1, result.stderr
    assert "step 'install' failed" in result.stderr
    assert "the old environment is back in place" in result.stderr
    assert snapshot(tmp_path) == before


@contextlib.contextmanager
def unwritable(directory: Path) -> Iterator[None]:
    """`directory` where nobody may rename or create entries (root too: the immutable bit)."""
    if os.geteuid() != 0:
        directory.chmod(0o555)
        try:
            yield
        finally:
            directory.chmod(0o755)
        return
    made = subprocess.run(["chattr", "+i", str(directory)], capture_output=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"root, and chattr +i failed here: {made.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(directory)], check=True)


@pytest.mark.uv
def test_force_under_an_unwritable_parent_is_refused_unless_in_place(
    tmp_path: Path, index: Served, env: dict[str, str]
) -> None:
    target = tmp_path / "venvs" / "me"  # /opt/venvs/me: the env is the user's, the parent not
    target.parent.mkdir()
    uv_venv(target, env)
    before = snapshot(tmp_path)
    argv = ["venv", str(target), "--force", *FAILING, *request(index)]
    with unwritable(target.parent):
        refused = run_envsetup(*argv, env=env)
        in_place = run_envsetup(*argv, "--replace-in-place", env=env)
    assert refused.returncode == 1, refused.stderr
    assert f"cannot replace {target} safely: it cannot be renamed" in refused.stderr
    assert "nothing was changed" in refused.stderr and "--replace-in-place" in refused.stderr
    assert in_place.returncode == 1, in_place.stderr
    assert "step 'install' failed" in in_place.stderr
    assert "the old environment is back in place" in in_place.stderr
    assert snapshot(tmp_path) == before


def bind_mounted(target: Path, *argv: str) -> list[str]:
    """`argv` run in a private mount namespace where `target` is a mount point (a volume)."""
    if sys.platform != "linux" or os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("a bind mount needs Linux, root and unshare(1)")
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"unshare -m is not allowed here: {probe.stderr.decode().strip()}")
    script = 'mount --bind "$0" "$0" && exec "$@"'
    return ["unshare", "-m", "sh", "-c", script, str(target), *argv]


@pytest.mark.uv
def test_force_on_a_mount_point(tmp_path: Path, index: Served, env: dict[str, str]) -> None:
    target = tmp_path / ".venv"  # a Docker volume on .venv: rename() says EBUSY
    uv_venv(target, env)
    before = snapshot(tmp_path)
    envsetup = [sys.executable, "-m", "envsetup", "venv", str(target), "--force"]

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        command = bind_mounted(target, *envsetup, *argv, *request(index))
        return subprocess.run(command, env=env, capture_output=True, text=True, check=False)

    refused = run(*FAILING)
    assert refused.returncode == 1, refused.stderr
    assert "it cannot be renamed (it is a mount point" in refused.stderr
    assert snapshot(tmp_path) == before
    failed = run(*FAILING, "--replace-in-place")
    assert failed.returncode == 1, failed.stderr
    assert "the old environment is back in place" in failed.stderr
    assert snapshot(tmp_path) == before
    replaced = run("--installer", "uv", "--torch", "2.5.1", "--replace-in-place")
    assert replaced.returncode == 0, replaced.stderr
    assert site_torch(target) == ["torch-2.5.1+cpu.dist-info"]
    assert not (target / "notes.txt").exists()
    assert not [p.name for p in target.iterdir() if p.name.startswith(".envsetup")]


@pytest.mark.uv
def test_a_stale_aside_is_named_and_never_promoted(
    tmp_path: Path, index: Served, env: dict[str, str]
) -> None:
    target = tmp_path / "env"
    uv_venv(target, env)
    stale = tmp_path / f".envsetup-old-{tag(target)}"  # a run killed with SIGKILL left it
    stale.mkdir()
    (stale / "pyvenv.cfg").write_text("home = /an/older/python\n")
    before = snapshot(tmp_path)
    result = run_envsetup("venv", str(target), "--force", *FAILING, *request(index), env=env)
    assert result.returncode == 1, result.stderr
    assert f"{stale} is left from an earlier envsetup run on {target}" in result.stderr
    assert "back in place" not in result.stderr
    assert snapshot(tmp_path) == before


@pytest.mark.uv
def test_venv_dot_inside_an_empty_directory(
    tmp_path: Path, index: Served, env: dict[str, str]
) -> None:
    here = tmp_path / "project"
    here.mkdir()
    command = [sys.executable, "-m", "envsetup", "venv", ".", "--installer", "uv"]
    command += ["--torch", "2.5.1", *request(index)]
    result = subprocess.run(command, cwd=here, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"environment ready: {here}\n" in result.stderr
    assert site_torch(here) == ["torch-2.5.1+cpu.dist-info"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["project"]


@pytest.mark.parametrize("name", ["$(touch pwned)", "`touch pwned`", 'a"b', "new\nline"])
def test_a_path_the_activate_scripts_would_run_is_refused(
    tmp_path: Path, index: Served, env: dict[str, str], name: str
) -> None:
    target = tmp_path / name
    result = run_envsetup("venv", str(target), *FAILING, *request(index), env=env)
    assert result.returncode == 2, result.stderr
    assert "CVE-2024-9287" in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []
