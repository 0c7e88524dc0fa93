"""Every CLI verb with bad input: one clear message, the right exit code, never a traceback.

Exit codes: 1 the job cannot be done (no such release, no wheel for that Python, an interpreter
that does not exist), 2 the input itself is wrong (a specifier, a variant, an http:// index
without --allow-insecure-index, a value with shell metacharacters where none can belong).
Values where metacharacters are legal (a URL, a path) must come out quoted in every command
envsetup prints, so pasting it runs exactly one command with exactly that argument.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.fake_index import FakeBuild, Served, isolated_env, run_envsetup, serve_fake_index

from envsetup import cli

GARBAGE = (
    Path(__file__).parents[1] / "support" / "fake_wheels" / "torch" / "__init__.py"
)  # text, not nvidia-smi
NO_GPU = ["--gpu", "none"]
TARGET = ["--platform", "linux-x86_64", "--python", "3.11"]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("ENVSETUP_", "UV_TORCH_BACKEND", "CONDA_OVERRIDE", "LTT_")):
            monkeypatch.delenv(name)


def run_cli(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    try:
        code = cli.main(argv)
    except SystemExit as exit:  # argparse's own usage errors
        code = int(exit.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def assert_clear_failure(code: int, expected: int, out: str, err: str, fragment: str) -> None:
    assert code == expected, (code, out, err)
    assert fragment in err, err
    assert "Traceback" not in err and "internal error" not in err, err
    assert out == "", out
    last = err.strip().splitlines()[-1] if err.strip() else ""
    assert err.startswith("envsetup: error: ") or "error: " in last, err


CASES = [
    # detect
    (["detect", "--timeout", "0"], 2, "expected seconds between 0 and 600"),
    (["detect", "--nvidia-smi-output", str(GARBAGE)], 2, "in no known format"),
    (["detect", "--nvidia-smi-output", "/nonexistent/smi.txt"], 2, "cannot read"),
    (["detect", "--gpus"], 2, "unrecognized arguments: --gpus"),
    # plan: unknown release, impossible python x torch, invalid specifiers and values
    (["plan", *NO_GPU, *TARGET, "--torch", "9.9.9"], 1, "no torch release matches ==9.9.9"),
    (["plan", *NO_GPU, "--platform", "linux-x86_64", "--python", "3.6", "--torch", "2.5.1"], 1,
     "no wheel for Python 3.6 on linux-x86_64"),
    (["plan", *NO_GPU, "--platform", "linux-x86_64", "--python", "3.13", "--torch", "1.12.1"], 1,
     "works here: --torch"),
    (["plan", "--driver", "535.104.05", *TARGET, "--torch", "2.5.1", "--backend", "cu130"], 1,
     "cu130"),
    (["plan", *NO_GPU, *TARGET, "--torch", ">=2.4,<<2.6"], 2, "not a valid PEP 440"),
    (["plan", *NO_GPU, *TARGET, "--torch", "torch[cuda]>=2"], 2, "not a valid PEP 440"),
    (["plan", *NO_GPU, *TARGET, "--torch", "numpy>=1"], 2, "names 'numpy'"),
    (["plan", *NO_GPU, *TARGET, "--with", "numpy"], 2, "envsetup pins only"),
    (["plan", *NO_GPU, *TARGET, "--backend", "cu99x"], 2, "unknown variant 'cu99x'"),
    (["plan", *NO_GPU, *TARGET, "--index-url-base", "http://mirror.example/whl"], 2,
     "--allow-insecure-index"),
    (["plan", *NO_GPU, *TARGET, "--find-links-base", "http://mirror.example/whl"], 2,
     "--allow-insecure-index"),
    (["plan", *NO_GPU, *TARGET, "--index-url-base", "https://a b/whl"], 2, "whitespace"),
    (["plan", "--cuda", "twelve", *TARGET], 2, "invalid machine flag value"),
    (["plan", "--platform", "amiga-68k"], 2, "invalid choice: 'amiga-68k'"),
    (["plan", "--nvidia-smi-output", str(GARBAGE), *TARGET], 2, "in no known format"),
    # install (planned exactly as plan, before anything runs)
    (["install", "--dry-run", *NO_GPU, "--torch", "9.9.9"], 1, "no torch release matches"),
    (["install", "--dry-run", *NO_GPU, "--index-url-base", "http://m.example"], 2,
     "--allow-insecure-index"),
    (["install", "--dry-run", *NO_GPU, "--python", "/nonexistent/bin/python"], 2,
     "'/nonexistent/bin/python' was not found"),
    (["install", "--dry-run", "--installer", "conda"], 2, "invalid choice: 'conda'"),
    # verify
    (["verify", "--expect", "torch==2.5.1;ls"], 2, "is not a torch requirement"),
    (["verify", "--expect-variant", "cu12x"], 2, "unknown variant 'cu12x'"),
    (["verify", "--python", "/nonexistent/bin/python"], 2, "/nonexistent/bin/python"),
    # matrix
    (["matrix", "--torch", "<<2"], 2, "--torch"),
    (["matrix", "--variant", "cu1;ls"], 2, "is not a variant name"),
    (["matrix", "--newest", "0"], 2, "expected a positive number"),
    (["matrix", "--python", "three"], 2, "--python"),
    (["matrix", "update", "--listing", "/nonexistent/listing.html"], 2, "/nonexistent/listing"),
    (["matrix", "update", "--listing", "ftp://mirror.example/whl/torch/"], 2, "ftp://"),
    (["matrix", "update", "--listing", "http://mirror.example/whl/torch/"], 2,
     "--allow-insecure-index"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "expected", "fragment"), CASES, ids=[" ".join(c[0][:3]) for c in CASES]
)
def test_bad_input_is_one_clear_message_and_the_right_exit_code(
    capsys: pytest.CaptureFixture[str], argv: list[str], expected: int, fragment: str
) -> None:
    code, out, err = run_cli(capsys, argv)
    assert_clear_failure(code, expected, out, err, fragment)


def test_venv_with_an_impossible_request_creates_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for argv, expected in (
        (["--torch", "9.9.9"], 1),
        (["--index-url-base", "http://m.example/whl"], 2),
        (["--torch", "2.5.1;rm -rf ~"], 2),
        (["--python", "/nonexistent/bin/python"], 2),
    ):
        code, _, err = run_cli(capsys, ["venv", str(tmp_path / "env"), *NO_GPU, *argv])
        assert code == expected, err
        assert "Traceback" not in err and err.startswith("envsetup: error: ")
        assert list(tmp_path.iterdir()) == []
    (tmp_path / "file").write_text("mine\n")
    code, _, err = run_cli(capsys, ["venv", str(tmp_path / "file"), *NO_GPU])
    assert code == 1 and "exists and is not a directory" in err
    assert (tmp_path / "file").read_text() == "mine\n"


# --- shell metacharacters in every user-typed value --------------------------------------------

METACHARACTERS = [";id", "$(id)", "`id`", "|id", "&&id", "\nid", "'", '"', ">x"]

#: (verb prefix, flag, a valid value to append the metacharacters to)
VALUES = [
    (["plan", *NO_GPU, *TARGET], "--torch", "2.5.1"),
    (["plan", *NO_GPU, *TARGET], "--with", "torchvision"),
    (["plan", *NO_GPU, *TARGET], "--backend", "cpu"),
    (["plan", "--platform", "linux-x86_64"], "--python", "3.11"),
    (["plan", *TARGET], "--driver", "535.104.05"),
    (["plan", *TARGET], "--cuda", "12.2"),
    (["plan", *TARGET], "--compute-cap", "8.6"),
    (["plan", "--driver", "535.104.05", *TARGET, "--torch", "2.5.1"], "--index-url-base",
     "https://mirror.example/whl"),
    (["plan", "--driver", "535.104.05", *TARGET, "--torch", "2.5.1"], "--find-links-base",
     "https://mirror.example/whl"),
    (["install", "--dry-run", *NO_GPU], "--torch", "2.5.1"),
    (["install", "--dry-run", *NO_GPU, "--torch", "2.5.1"], "--index-url-base",
     "https://mirror.example/whl"),
    (["verify"], "--expect", "torch==2.5.1"),
    (["verify"], "--expect-variant", "cpu"),
    (["matrix"], "--torch", "2.5.1"),
    (["matrix"], "--variant", "cu121"),
    (["matrix"], "--python", "3.11"),
]  # fmt: skip


def _commands(out: str) -> list[str]:
    return [line for line in out.splitlines() if " install " in line and "pip" in line]


@pytest.mark.parametrize(
    ("prefix", "flag", "valid"), VALUES, ids=[f"{v[0][0]} {v[1]}" for v in VALUES]
)
def test_shell_metacharacters_are_refused_or_quoted(
    capsys: pytest.CaptureFixture[str], prefix: list[str], flag: str, valid: str
) -> None:
    for metacharacter in METACHARACTERS:
        value = valid + metacharacter
        code, out, err = run_cli(capsys, [*prefix, flag, value])
        assert "Traceback" not in err and "internal error" not in err, err
        if code == 0:
            # Accepted (legal in a URL): every printed command quotes it, so a paste runs one
            # command whose argument holds the value verbatim.
            assert flag.endswith("-base"), (flag, value, out)
            commands = _commands(out)
            assert commands, out
            for line in commands:
                argv = shlex.split(line)
                # plan says "python"; install runs this interpreter or the uv it found
                assert argv[0] in ("python", sys.executable) or Path(argv[0]).name == "uv", line
                assert any(arg.startswith(value) for arg in argv), (line, value)
        else:
            assert code == 2, (flag, value, err)
            assert err.startswith("envsetup: error: ") or "error: argument" in err, err
            assert flag in err or repr(value) in err or "invalid" in err, err


# --- real processes: what users see ---------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["detect", "--nvidia-smi-output", "-"], 2),
        (["plan", *NO_GPU, *TARGET, "--torch", "9.9.9"], 1),
        (["install", "--dry-run", *NO_GPU, "--torch", "2.5.1$(id)"], 2),
        (["venv", "/nonexistent-root-dir/env", *NO_GPU, "--torch", "2.5.1", "--backend", "x"], 2),
        (["verify", "--expect-variant", "cu12x"], 2),
        (["matrix", "--newest", "-3"], 2),
    ],
    ids=["detect", "plan", "install", "venv", "verify", "matrix"],
)
def test_each_verb_as_a_process_never_shows_a_traceback(argv: list[str], expected: int) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENVSETUP_")}
    result = subprocess.run(
        [sys.executable, "-m", "envsetup", *argv],
        input="this is not nvidia-smi output\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == expected, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith("envsetup: error: ")
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) <= 3  # the message, maybe a hint


@pytest.mark.parametrize("verb", [["install", "--dry-run"], ["venv", "/nonexistent-root/env"]])
def test_a_bad_installer_from_the_environment_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, verb: list[str]
) -> None:
    """Before: argparse does not check a default against its choices, and `uv;id` reached the
    command builder: "internal error: ValueError", exit 1."""
    monkeypatch.setenv("ENVSETUP_INSTALLER", "uv;id")
    code, out, err = run_cli(capsys, [*verb, *NO_GPU])
    assert_clear_failure(code, 2, out, err, "invalid choice: 'uv;id'")
    assert "ENVSETUP_INSTALLER" in err and "expected one of: auto, pip, uv" in err
    monkeypatch.setenv("ENVSETUP_INSTALLER", "uv")  # a good one still works, and a flag wins
    assert run_cli(capsys, ["install", "--dry-run", *NO_GPU, "--installer", "pip"])[0] == 0


@pytest.fixture(scope="module")
def index() -> Iterator[Served]:
    with serve_fake_index([FakeBuild("2.5.1", "cpu")]) as served:
        yield served


@pytest.mark.uv
def test_venv_path_with_metacharacters_is_built_and_its_activation_line_is_quoted(
    tmp_path: Path, index: Served
) -> None:
    # `$(…)` and backticks are refused (CVE-2024-9287: tests/unit/install/test_venv.py); the rest is
    # quoted
    target = tmp_path / "my env;touch pwned;it's & more"
    result = run_envsetup(
        "venv", str(target), "--installer", "uv", "--torch", "2.5.1", *NO_GPU,
        "--index-url-base", index.url, "--allow-insecure-index", env=isolated_env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "activate it with:" in result.stderr
    line = result.stdout.strip()  # stdout holds only the activation line
    shown = subprocess.run(
        ["sh", "-c", f'{line} && python -c "import sys; print(sys.prefix)"'],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert shown.stdout.strip() == str(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]  # nothing was touched


@pytest.mark.parametrize(("value", "expected"), [("", 2), ("0", 2), ("1", 0), ("true", 0)])
def test_the_insecure_index_opt_in_also_comes_from_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, value: str, expected: int
) -> None:
    """ENVSETUP_ALLOW_INSECURE_INDEX=1 is how nox and tox are asked; the CLI honours it too."""
    monkeypatch.setenv("ENVSETUP_ALLOW_INSECURE_INDEX", value)
    mirror = "http://mirror.example/whl"
    argv = ["plan", *NO_GPU, *TARGET, "--torch", "2.5.1", "--index-url-base", mirror]
    code, out, err = run_cli(capsys, argv)
    if expected:
        assert_clear_failure(code, expected, out, err, "--allow-insecure-index")
    else:
        assert code == 0, err
        assert f"--index-url {mirror}/cpu torch==2.5.1+cpu" in out
