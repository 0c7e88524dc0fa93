"""`envsetup venv` when the installer fails after writing, the disk fills, or a signal lands
while the environment is being created: every time, the tree is exactly as before.

tests/unit/install/test_venv.py covers a clean installer failure (a missing wheel), --force
rollback, and
SIGINT/SIGTERM while real pip/uv download from the fake index. Here the installer is made to fail
*midway*, after it has written into the new environment:
- pip: a `pip` package on PYTHONPATH shadows the real one for `python -m pip` (ensurepip still
  uses its bundled pip to create the venv). It writes half a torch into site-packages, then hits
  a real ENOSPC by writing to /dev/full, is SIGKILLed (the OOM killer), or wedges.
- uv: a `uv` on PATH runs the real uv (which installs everything) and then reports a failure, or
  creates the venv and wedges before returning.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import fakes
from support.fake_index import (
    CPU_BUILDS,
    Served,
    index_fixture,
    isolated_env,
    run_envsetup,
    serve_fake_index,
    uv_executable,
)

from unit.install.test_venv import request, site_torch, snapshot, uv_venv

FAKE_PIP = '''\
"""Stands in for `python -m pip install`: writes half a torch, then fails as FAKE_PIP_MODE says."""
import os, signal, sys, sysconfig, time

site = sysconfig.get_paths()["purelib"]
print("Collecting torch", flush=True)
os.makedirs(os.path.join(site, "torch"), exist_ok=True)
with open(os.path.join(site, "torch", "__init__.py"), "w") as half:
    half.write("# the first of many files\\n")
print("Installing collected packages: torch", flush=True)
mode = os.environ.get("FAKE_PIP_MODE", "enospc")
if mode == "killed":
    os.kill(os.getpid(), signal.SIGKILL)
if mode == "hang":
    time.sleep(600)
try:
    with open("/dev/full", "w") as disk:  # a real ENOSPC from the kernel
        disk.write("x" * 65536)
        disk.flush()
except OSError as error:
    print(f"ERROR: Could not install packages due to an OSError: {error}", flush=True)
    sys.exit(1)
'''


index = index_fixture(CPU_BUILDS)


@pytest.fixture
def pip_shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pip-shim")
    (folder / "pip").mkdir()
    (folder / "pip" / "__init__.py").write_text("")
    (folder / "pip" / "__main__.py").write_text(FAKE_PIP)
    return folder


def fake_uv(folder: Path, *, after_install: str = "", after_venv: str = "") -> dict[str, str]:
    """A `uv` on PATH that runs the real one, then does `after_*` (the environment to use)."""
    script = (
        f'"{uv_executable()}" "$@" || exit $?\n'
        f'case "$1" in pip) {after_install or "true"};; venv) {after_venv or "true"};; esac'
    )
    fakes.fake_tool(folder, "uv", then=script)
    return isolated_env({"PATH": os.pathsep.join([str(folder), os.environ["PATH"]])})


def assert_rolled_back(
    result: subprocess.CompletedProcess[str], tmp_path: Path, before: dict
) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "step 'install' failed" in result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(tmp_path) == before


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full for a real ENOSPC")
def test_pip_hits_a_full_disk_midway(tmp_path: Path, index: Served, pip_shim: Path) -> None:
    target = tmp_path / "deep" / "env"
    env = isolated_env({"PYTHONPATH": str(pip_shim)})
    before = snapshot(tmp_path)
    result = run_envsetup("venv", str(target), "--torch", "2.5.1", *request(index), env=env)
    assert_rolled_back(result, tmp_path, before)
    assert "ERROR: Could not install packages due to an OSError: [Errno 28] No space left" in (
        result.stderr
    )
    assert "hint: free disk space" in result.stderr
    assert f"{target}: nothing was left" in result.stderr


def test_pip_killed_midway_puts_the_old_environment_back(
    tmp_path: Path, index: Served, pip_shim: Path
) -> None:
    target = tmp_path / "env"
    env = isolated_env({"PYTHONPATH": str(pip_shim), "FAKE_PIP_MODE": "killed"})
    uv_venv(target, env)
    before = snapshot(tmp_path)
    result = run_envsetup(
        "venv", str(target), "--force", "--torch", "2.5.1", *request(index), env=env
    )
    assert_rolled_back(result, tmp_path, before)
    assert "exited with -9" in result.stderr
    assert "Installing collected packages: torch" in result.stderr
    assert f"{target}: the old environment is back in place" in result.stderr


@pytest.mark.uv
@pytest.mark.parametrize("existing", [False, True], ids=["new", "force"])
def test_uv_fails_after_installing(tmp_path: Path, index: Served, existing: bool) -> None:
    target = tmp_path / "env"
    message = "error: Failed to write to the cache: No space left on device (os error 28)"
    env = fake_uv(
        tmp_path.parent / f"{tmp_path.name}-bin", after_install=f"echo '{message}'; exit 2"
    )
    if existing:
        uv_venv(target, env)
    before = snapshot(tmp_path)
    force = ["--force"] if existing else []
    result = run_envsetup(
        "venv", str(target), "--installer", "uv", "--torch", "2.5.1", *force, *request(index),
        env=env,
    )  # fmt: skip
    assert_rolled_back(result, tmp_path, before)
    assert "exited with 2" in result.stderr and message in result.stderr
    assert "hint: free disk space" in result.stderr


def interrupt(argv: list[str], env: dict[str, str], ready: Path, signum: int) -> tuple[int, str]:
    """Run `envsetup venv`, wait until `ready` exists (mid-step), send `signum`: (code, stderr)."""
    process = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while not ready.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "envsetup ended before the step it was to be interrupted in"
    assert ready.exists(), "the step never started"
    time.sleep(0.3)  # let the wedged child settle into its sleep
    process.send_signal(signum)
    try:
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    return process.returncode, stderr


@pytest.mark.parametrize(
    ("signum", "existing"),
    [(signal.SIGINT, False), (signal.SIGTERM, True), (signal.SIGHUP, False)],
    ids=["sigint-new", "sigterm-force", "sighup-new"],
)
@pytest.mark.uv
def test_signal_while_the_environment_is_being_created(
    tmp_path: Path, index: Served, signum: int, existing: bool
) -> None:
    target = tmp_path / "env"
    outside = tmp_path.parent / f"{tmp_path.name}-bin"
    created = outside / "created"  # the new environment exists: uv venv has returned
    env = fake_uv(outside, after_venv=f"touch {created}; exec sleep 600")
    if existing:
        uv_venv(target, env)
    before = snapshot(tmp_path)
    argv = [sys.executable, "-m", "envsetup", "venv", str(target), "--installer", "uv"]
    argv += ["--torch", "2.5.1", *request(index), *(["--force"] if existing else [])]
    code, stderr = interrupt(argv, env, created, signum)
    assert code == 130, stderr
    assert "interrupted during step 'create'" in stderr and "Traceback" not in stderr
    assert snapshot(tmp_path) == before


def test_sigterm_while_pip_is_half_way(tmp_path: Path, index: Served, pip_shim: Path) -> None:
    """test_venv.py interrupts pip with SIGINT during a download; here SIGTERM, after writes."""
    target = tmp_path / "env"
    env = isolated_env({"PYTHONPATH": str(pip_shim), "FAKE_PIP_MODE": "hang"})
    before = snapshot(tmp_path)
    argv = [sys.executable, "-m", "envsetup", "venv", str(target), "--torch", "2.5.1"]
    argv += request(index)
    half = target / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    code, stderr = interrupt(
        argv, env, half / "site-packages" / "torch" / "__init__.py", signal.SIGTERM
    )
    assert code == 130, stderr
    assert "interrupted during step 'install'" in stderr and "Traceback" not in stderr
    assert snapshot(tmp_path) == before


# --- Children as a group, one run per target, a commit that cannot be cut in half.

ENSUREPIP_STAND_IN = """\
#!/bin/sh
# A base `python` whose `-m venv` leaves a grandchild writing into the new environment, as
# ensurepip does while `python -m venv` waits for it.
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
    "$REAL" -m venv --without-pip "$3" || exit $?
    (i=0; while :; do i=$((i+1)); echo x > "$3/ensurepip-$i"; sleep 0.01; done) &
    echo $! > "$STATE/writer.pid"
    touch "$STATE/writing"
    wait
    exit $?
fi
exec "$REAL" "$@"
"""


@pytest.mark.uv
@pytest.mark.parametrize(
    ("signum", "existing"),
    [(signal.SIGINT, True), (signal.SIGTERM, True), (signal.SIGTERM, False)],
    ids=["sigint-force", "sigterm-force", "sigterm-new"],
)
def test_signal_while_a_grandchild_writes_into_the_new_environment(
    tmp_path: Path, index: Served, signum: int, existing: bool
) -> None:
    target = tmp_path / "env"
    state = tmp_path.parent / f"{tmp_path.name}-state"
    state.mkdir()
    python = state / "python"
    python.write_text(ENSUREPIP_STAND_IN)
    python.chmod(0o755)
    env = isolated_env({"REAL": sys.executable, "STATE": str(state)})
    if existing:
        uv_venv(target, env)
    before = snapshot(tmp_path)
    argv = [sys.executable, "-m", "envsetup", "venv", str(target), "--python", str(python)]
    argv += ["--torch", "2.5.1", *request(index), *(["--force"] if existing else [])]
    try:
        code, stderr = interrupt(argv, env, state / "writing", signum)
        time.sleep(0.2)  # a writer that survived would write on meanwhile
        assert code == 130, stderr
        assert "interrupted during step 'create'" in stderr and "Traceback" not in stderr
        assert snapshot(tmp_path) == before  # the old environment intact, no half-built one
        assert not alive(int((state / "writer.pid").read_text()))
    finally:
        with contextlib.suppress(OSError, ValueError):
            os.kill(int((state / "writer.pid").read_text()), signal.SIGKILL)


def alive(pid: int) -> bool:
    """Whether `pid` still runs (a zombie does not: PID 1 may never reap an orphan)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


@pytest.mark.uv
def test_a_signal_while_the_old_environment_is_deleted_leaves_a_named_trash(
    tmp_path: Path, index: Served
) -> None:
    target = tmp_path / "env"
    env = isolated_env()
    uv_venv(target, env)
    trash = tmp_path / f".envsetup-trash-{hashlib.sha256(b'env').hexdigest()[:10]}"
    argv = [sys.executable, "-m", "envsetup", "venv", str(target), "--force"]
    argv += ["--installer", "uv", "--torch", "2.5.1", *request(index)]
    # The signal must land while the old environment is being deleted; on a loaded machine the
    # deletion can finish first, so a run that ended cleanly is retried with more to delete.
    for files in (40000, 80000, 160000):
        junk = target / "junk"
        junk.mkdir()
        for number in range(files):
            (junk / str(number)).touch()
        process = subprocess.Popen(
            argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            deadline = time.monotonic() + 120
            while not trash.exists() and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.001)
            assert trash.exists() or process.returncode == 0, "never renamed to its trash name"
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
        if not (process.returncode == 0 and not trash.exists()):
            break
    assert process.returncode == 130, stderr
    assert "the new environment is ready, but deleting the old one was cut short" in stderr
    assert str(trash) in stderr
    assert site_torch(target) == ["torch-2.5.1+cpu.dist-info"]
    assert not list(tmp_path.glob(".envsetup-old-*"))
    again = run_envsetup(*argv[3:], env=env)
    assert again.returncode == 0, again.stderr
    assert f"removing {trash}, left half-deleted by an earlier run" in again.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["env"]


@pytest.mark.uv
def test_a_second_run_on_the_same_target_refuses(tmp_path: Path) -> None:
    target = tmp_path / "env"
    env = isolated_env()
    uv_venv(target, env)
    before = snapshot(tmp_path)
    with serve_fake_index(CPU_BUILDS, slow={"/torch-": 120}) as slow:
        argv = [sys.executable, "-m", "envsetup", "venv", str(target), "--force"]
        argv += ["--installer", "uv", "--torch", "2.5.1", *request(slow)]
        first = subprocess.Popen(
            argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            assert slow.slow_hit.wait(60), "the first run never started downloading torch"
            second = run_envsetup(*argv[3:], env=env)
            first.send_signal(signal.SIGTERM)
            _, stderr = first.communicate(timeout=60)
        finally:
            if first.poll() is None:
                first.kill()
    assert second.returncode == 1, second.stdout + second.stderr
    assert f"another envsetup run (pid {first.pid}) is working on {target}" in second.stderr
    assert first.returncode == 130, stderr
    assert "the old environment is back in place" in stderr
    assert snapshot(tmp_path) == before
