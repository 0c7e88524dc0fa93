"""installed.py reads torch-family versions from metadata, here or in another interpreter,
and never imports torch (the fake torch below exits the interpreter if it is imported)."""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from envsetup.errors import EnvsetupError
from envsetup.install.installed import installed_versions, interpreter_facts
from envsetup.install.interpreter import MAX_OUTPUT, reported_json

POSIX_ONLY = pytest.mark.skipif(sys.platform == "win32", reason="uses a /bin/sh script")
BOOBY_TRAP = "raise SystemExit('torch was imported')\n"


def _fake_dist(site: Path, name: str, version: str) -> None:
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    package = site / name
    package.mkdir()
    (package / "__init__.py").write_text(BOOBY_TRAP)


@pytest.fixture(scope="module")
def venv_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("target") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    _fake_dist(site, "torch", "2.4.0+cu118")
    _fake_dist(site, "torchvision", "0.19.0+cu118")
    return python


def test_another_interpreter_reports_its_python_and_builds(venv_python: Path) -> None:
    python, found = interpreter_facts(str(venv_python))
    assert python == f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert found == {"torch": "2.4.0+cu118", "torchvision": "0.19.0+cu118"}
    assert installed_versions(str(venv_python)) == found


def test_this_interpreter_reads_metadata_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_dist(tmp_path, "torchaudio", "2.5.1+cpu")
    monkeypatch.syspath_prepend(str(tmp_path))
    found = installed_versions()
    assert found["torchaudio"] == "2.5.1+cpu"
    assert "torchaudio" not in sys.modules


def test_missing_interpreter() -> None:
    with pytest.raises(EnvsetupError, match="was not found") as error:
        interpreter_facts("/nonexistent/bin/python")
    assert error.value.hint == "pass the path of the target environment's python"


@POSIX_ONLY
def test_interpreter_that_fails(tmp_path: Path) -> None:
    script = tmp_path / "python"
    script.write_text("#!/bin/sh\necho broken >&2\nexit 3\n")
    script.chmod(0o755)
    with pytest.raises(EnvsetupError, match=r"could not list its packages \(exit 3\): broken"):
        interpreter_facts(str(script))


@POSIX_ONLY
def test_interpreter_that_prints_something_else(tmp_path: Path) -> None:
    script = tmp_path / "python"
    script.write_text("#!/bin/sh\necho 'Python 2.7.18'\n")
    script.chmod(0o755)
    with pytest.raises(EnvsetupError, match="printed no package list"):
        interpreter_facts(str(script))


def test_first_on_sys_path_wins_like_importlib_metadata(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from importlib import metadata

    later, first = tmp_path / "later", tmp_path / "first"
    _fake_dist(later, "torch", "2.4.0+cu118")
    _fake_dist(first, "torch", "2.5.1+cu121")
    egg = first / "torchvision-0.20.1-py3.11.egg-info"
    egg.mkdir()
    (egg / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: torchvision\nVersion: 0.20.1\n")
    monkeypatch.syspath_prepend(str(later))
    monkeypatch.syspath_prepend(str(first))
    found = installed_versions()
    assert found["torch"] == metadata.version("torch") == "2.5.1+cu121"
    assert found["torchvision"] == metadata.version("torchvision") == "0.20.1"


def _wrapper(tmp_path: Path, body: str) -> str:
    """A `python` that is a shell script: `body`, with $REAL the real interpreter."""
    script = tmp_path / "python"
    script.write_text(f"#!/bin/sh\nREAL={shlex.quote(sys.executable)}\n{body}\n")
    script.chmod(0o755)
    return str(script)


@POSIX_ONLY
def test_output_before_and_after_the_answer_is_not_the_answer(tmp_path: Path) -> None:
    """A sitecustomize printing at start-up (no newline) and an atexit hook printing after."""
    python = _wrapper(tmp_path, 'printf \'hello from sitecustomize\'\n"$REAL" "$@"\necho bye')
    version, found = interpreter_facts(python)
    assert version == f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert isinstance(found, dict)


@POSIX_ONLY
def test_an_interpreter_that_floods_is_stopped_at_the_byte_limit(tmp_path: Path) -> None:
    python = _wrapper(tmp_path, f"head -c {MAX_OUTPUT + 1024} /dev/zero\nexec sleep 600")
    started = time.monotonic()
    with pytest.raises(EnvsetupError, match="printed more than 8 MiB and was stopped"):
        interpreter_facts(python, timeout=60)
    assert time.monotonic() - started < 30


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc to see the child")
def test_a_hung_interpreter_is_stopped_with_its_children(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    python = _wrapper(tmp_path, f"sleep 600 &\necho $! > {pid_file}\nexec sleep 600")
    started = time.monotonic()
    with pytest.raises(EnvsetupError, match="no answer within 1 s; it was stopped"):
        interpreter_facts(python, timeout=1)
    assert time.monotonic() - started < 10
    assert not running(int(pid_file.read_text()))


def running(pid: int) -> bool:
    """Whether `pid` is alive and not a zombie (an orphan PID 1 never reaps is one)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def test_verify_answer_is_found_after_output_without_a_newline() -> None:
    from envsetup.verify.inside import MARKER

    stdout = f'torch warning: something\nno newline here{MARKER}{{"ok": 1}}\natexit: bye'
    assert reported_json(stdout, MARKER) == {"ok": 1}
    assert reported_json("nothing to see", MARKER) is None
