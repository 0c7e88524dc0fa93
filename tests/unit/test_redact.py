"""A credential in an index URL shows as `user:****`, as pip shows it, everywhere but the
command the user asked `plan` (or `install --dry-run`) for."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.fake_index import FakeBuild, Served, isolated_env, run_envsetup, serve_fake_index

from envsetup import cli
from envsetup.install.run import StepFailed, run_step
from envsetup.redact import redact

SECRET = "s3cret-t0ken"
MIRROR = f"https://me:{SECRET}@mirror.example/whl"
TARGET = ["--gpu", "none", "--platform", "linux-x86_64", "--python", "3.11"]


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("https://me:tok@host/simple", "https://me:****@host/simple"),
        ("https://tok@host:8443/simple", "https://****@host:8443/simple"),  # a lone token
        ("https://a@b:c@host/", "https://a@b:****@host/"),  # pip splits at the last @
        ("$ pip install --index-url 'https://me:p$w@h/x' torch", "$ pip install --index-url "
         "'https://me:****@h/x' torch"),
        ("see https://host/a@b and file:///tmp/x", "see https://host/a@b and file:///tmp/x"),
        ("mail me@example.com", "mail me@example.com"),
    ],
)  # fmt: skip
def test_urls_are_shown_as_pip_shows_them(text: str, shown: str) -> None:
    assert redact(text) == shown


def plan(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[str, str]:
    assert cli.main(["plan", *TARGET, "--index-url-base", MIRROR, *argv]) == 0
    captured = capsys.readouterr()
    return captured.out, captured.err


def test_plan_keeps_the_credential_only_in_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    """Before: the reasons ("torch from https://me:s3cret…") and --json's index_url and reasons
    held it in clear. The command (stdout) is the artefact; the explanation goes to stderr."""
    command, explanation = plan(capsys)
    assert command.count("\n") == 1 and f"--index-url {MIRROR}/cpu" in command  # ready to paste
    assert SECRET not in explanation and "https://me:****@mirror.example/whl/cpu" in explanation
    out, err = plan(capsys, "--json")
    document = json.loads(out)
    assert SECRET in document.pop("commands")[0]
    assert SECRET not in json.dumps(document) and SECRET not in err
    assert document["index_url"] == "https://me:****@mirror.example/whl/cpu"
    assert cli.main(["install", "--dry-run", "--gpu", "none", "--index-url-base", MIRROR]) == 0
    dry_run = capsys.readouterr()
    assert SECRET in dry_run.out  # --dry-run prints the command itself
    assert SECRET not in dry_run.err


def test_step_lines_and_failures_hide_it(tmp_path: Path) -> None:
    """Before: the `$ …` line, the failure message and its rerun hint showed the token."""
    out = io.StringIO()
    argv = [sys.executable, "-c", "import sys; print(sys.argv[1]); sys.exit(3)", f"{MIRROR}/cpu"]
    with pytest.raises(StepFailed) as failed:
        run_step("install", argv, out=out)
    assert "$ " in out.getvalue() and SECRET not in out.getvalue().split("$ ", 1)[1].split("\n")[0]
    assert SECRET not in str(failed.value) and "me:****@mirror.example" in str(failed.value)
    assert "rerun the command" in str(failed.value)


@pytest.fixture(scope="module")
def index() -> Iterator[Served]:
    with serve_fake_index([FakeBuild("2.5.1", "cpu")]) as served:
        yield served


@pytest.mark.uv
def test_an_install_and_a_failed_install_never_print_it(tmp_path: Path, index: Served) -> None:
    from support.fake_index import uv_executable

    env = isolated_env()
    subprocess.run([uv_executable(), "venv", "-q", str(tmp_path / "env")], env=env, check=True)
    python = str(tmp_path / "env" / "bin" / "python")
    base = index.url.replace("http://", f"http://me:{SECRET}@")
    common = ["install", "--python", python, "--installer", "uv", "--gpu", "none",
              "--index-url-base", base, "--allow-insecure-index", "--yes"]  # fmt: skip
    done = run_envsetup(*common, "--torch", "2.5.1", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert SECRET not in done.stdout + done.stderr
    assert "me:****@127.0.0.1" in done.stderr  # the plan's why and the `$ …` lines
    failed = run_envsetup(*common, "--torch", "2.5.0", env=env)  # the index does not have it
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert SECRET not in failed.stdout + failed.stderr
    assert "me:****@127.0.0.1" in failed.stderr
