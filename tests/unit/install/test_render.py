"""Renderers: every installer format carries the Plan's exact pins and index, quoted safely.

pip and uv lines are parsed back with shlex and run for real (`--dry-run`) against a PEP 503
index on 127.0.0.1; the uv-project block is locked by a real `uv lock`; the TOML and YAML
snippets are parsed back.
"""

from __future__ import annotations

import importlib.util
import json
import shlex
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from support.fake_index import (
    FakeBuild,
    build_wheels,
    isolated_env,
    serve_fake_index,
    uv_executable,
)

from envsetup.errors import EnvsetupError
from envsetup.install.render import FORMATS, command_lines, quote_argv, render
from envsetup.model.plan import ChannelPin, Plan

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.9/3.10
    import tomli as tomllib

CU121 = Plan(
    torch="2.5.1",
    variant="cu121",
    index_url="https://download.pytorch.org/whl/cu121",
    packages=("torch==2.5.1+cu121", "torchvision==0.20.1+cu121"),
    platform="linux-x86_64",
    python="3.11",
)
MACOS = Plan(
    torch="2.5.1",
    variant="cpu",
    index_url=None,
    packages=("torch==2.5.1",),
    platform="macos-arm64",
    python="3.12",
)
NIGHTLY = Plan(
    torch=ChannelPin("nightly"),
    variant="cu130",
    index_url="https://download.pytorch.org/whl/nightly/cu130",
    packages=("torch", "torchvision"),
    platform="linux-x86_64",
    python="3.12",
    channel="nightly",
    pre=True,
)
FLAT = replace(CU121, index_url=None, find_links="https://mirror.example/flat/cu121")
NEEDS_PIP = pytest.mark.skipif(
    importlib.util.find_spec("pip") is None, reason="pip is not installed in this interpreter"
)


def test_pip_line_uses_index_url_and_exact_pins() -> None:
    line = render(CU121, "pip")
    assert shlex.split(line) == [
        "python",
        "-m",
        "pip",
        "install",
        "--index-url",
        "https://download.pytorch.org/whl/cu121",
        "torch==2.5.1+cu121",
        "torchvision==0.20.1+cu121",
    ]


def test_uv_line_and_reinstall_and_pre() -> None:
    argv = shlex.split(render(replace(NIGHTLY, replaces="torch==2.4.0"), "uv"))
    assert argv[:3] == ["uv", "pip", "install"]
    assert "--pre" in argv and "--reinstall" in argv
    assert argv[argv.index("--index-url") + 1] == NIGHTLY.index_url
    pip_argv = shlex.split(render(replace(CU121, replaces="torch==2.4.0+cu118"), "pip"))
    assert "--force-reinstall" in pip_argv


def test_pypi_plan_has_no_index_flag() -> None:
    argv = shlex.split(render(MACOS, "pip"))
    assert "--index-url" not in argv and argv[-1] == "torch==2.5.1"


def test_flat_mirror_uses_find_links() -> None:
    argv = shlex.split(render(FLAT, "pip"))
    assert argv[argv.index("--find-links") + 1] == "https://mirror.example/flat/cu121"
    assert "--no-index" in argv  # without it PyPI would act as an extra index
    assert "--index-url" not in argv
    assert render(FLAT, "requirements").splitlines()[1:3] == [
        "--no-index",
        "--find-links https://mirror.example/flat/cu121",
    ]


def test_requirements_file() -> None:
    lines = render(NIGHTLY, "requirements").splitlines()
    assert lines[0].startswith("# envsetup plan: torch latest (cu130)")
    assert lines[1:] == [f"--index-url {NIGHTLY.index_url}", "--pre", "torch", "torchvision"]
    assert command_lines(CU121, "requirements") == ["python -m pip install -r requirements.txt"]


def test_uv_project_block() -> None:
    document = tomllib.loads(render(CU121, "uv-project"))
    assert document["project"]["dependencies"] == list(CU121.packages)
    (index,) = document["tool"]["uv"]["index"]
    assert index == {
        "name": "pytorch-cu121",
        "url": "https://download.pytorch.org/whl/cu121",
        "explicit": True,
    }
    assert document["tool"]["uv"]["sources"] == {
        "torch": [{"index": "pytorch-cu121"}],
        "torchvision": [{"index": "pytorch-cu121"}],
    }
    assert document["tool"]["uv"]["environments"] == [
        "sys_platform == 'linux' and platform_machine == 'x86_64'"
    ]
    flat = tomllib.loads(render(FLAT, "uv-project"))
    assert flat["tool"]["uv"]["index"][0]["format"] == "flat"
    pypi = tomllib.loads(render(MACOS, "uv-project"))
    assert "tool" not in pypi and pypi["project"]["dependencies"] == ["torch==2.5.1"]
    nightly = tomllib.loads(render(NIGHTLY, "uv-project"))
    assert nightly["tool"]["uv"]["prerelease"] == "allow"
    assert nightly["tool"]["uv"]["index"][0]["name"] == "pytorch-nightly-cu130"


def test_poetry_source_is_explicit() -> None:
    document = tomllib.loads(render(CU121, "poetry"))
    assert document["tool"]["poetry"]["source"] == [
        {
            "name": "pytorch-cu121",
            "url": "https://download.pytorch.org/whl/cu121",
            "priority": "explicit",
        }
    ]
    assert document["tool"]["poetry"]["dependencies"]["torch"] == {
        "version": "2.5.1+cu121",
        "source": "pytorch-cu121",
    }
    pypi = tomllib.loads(render(MACOS, "poetry"))
    assert pypi["tool"]["poetry"]["dependencies"]["torch"] == {"version": "2.5.1"}
    nightly = tomllib.loads(render(NIGHTLY, "poetry"))
    assert nightly["tool"]["poetry"]["dependencies"]["torch"]["allow-prereleases"] is True
    with pytest.raises(EnvsetupError, match="poetry cannot use a flat"):
        render(FLAT, "poetry")


def test_pixi_per_package_index() -> None:
    document = tomllib.loads(render(CU121, "pixi"))
    assert document["pypi-dependencies"]["torchvision"] == {
        "version": "==0.20.1+cu121",
        "index": "https://download.pytorch.org/whl/cu121",
    }
    nightly = tomllib.loads(render(NIGHTLY, "pixi"))
    assert nightly["pypi-options"]["prerelease-mode"] == "allow"
    assert nightly["pypi-dependencies"]["torch"]["version"] == "*"
    flat = tomllib.loads(render(FLAT, "pixi"))
    assert flat["pypi-options"]["find-links"] == [{"url": FLAT.find_links}]


def test_conda_environment_pip_section() -> None:
    text = render(CU121, "conda")
    assert "  - python=3.11\n" in text
    pip_items = [
        json.loads(line.split("- ", 1)[1])
        for line in text.splitlines()
        if line.startswith("      - ")
    ]
    assert pip_items == [
        "--index-url https://download.pytorch.org/whl/cu121",
        "torch==2.5.1+cu121",
        "torchvision==0.20.1+cu121",
    ]
    assert command_lines(CU121, "conda") == ["conda env create -f environment.yml"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_no_renderer_ever_uses_an_extra_index(fmt: str) -> None:
    for plan in (CU121, MACOS, NIGHTLY):
        assert "extra-index" not in render(plan, fmt)
        assert "extra-index" not in " ".join(command_lines(plan, fmt))


HOSTILE = "https://mirror.example/whl/it's $(rm -rf ~) `x` & | ; >"
#: PowerShell's tokenizer ends a single-quoted string at any of these (`IsSingleQuote`: ASCII
#: and U+2018..U+201B); two in a row stand for the second one.
PS_QUOTES = "'\u2018\u2019\u201a\u201b"
TYPOGRAPHIC = "https://x/\u2019;Start-Process(\u2018calc\u2019);\u2018"


def test_posix_quoting_round_trips_hostile_text() -> None:
    argv = ["python", "-m", "pip", "install", "--index-url", HOSTILE, "torch==2.5.1+cu121"]
    assert shlex.split(quote_argv(argv, "posix")) == argv


def test_powershell_quoting_is_literal() -> None:
    line = quote_argv(["uv", "pip", "install", "--index-url", HOSTILE, "a,b", "@x"], "powershell")
    assert line == (
        "uv pip install --index-url 'https://mirror.example/whl/it''s $(rm -rf ~) `x` & | ; >' "
        "'a,b' '@x'"
    )


@pytest.mark.skipif(shutil.which("pwsh") is None, reason="PowerShell is not installed")
@pytest.mark.parametrize("text", [HOSTILE, TYPOGRAPHIC])
def test_powershell_quoting_round_trips_in_pwsh(text: str) -> None:  # pragma: no cover - needs pwsh
    line = quote_argv(["echo", text], "powershell")
    out = subprocess.run(
        ["pwsh", "-NoProfile", "-Command", line], capture_output=True, text=True, check=False
    )
    assert out.stdout.strip() == text


def powershell_words(line: str) -> list[str]:
    """The arguments PowerShell reads from a line of bare words and single-quoted strings."""
    words: list[str] = []
    at = 0
    while at < len(line):
        if line[at] == " ":
            at += 1
        elif line[at] in PS_QUOTES:
            word, at = [], at + 1
            while True:
                assert at < len(line), f"unterminated string in {line!r}"
                if line[at] in PS_QUOTES:
                    if at + 1 < len(line) and line[at + 1] in PS_QUOTES:
                        word.append(line[at + 1])
                        at += 2
                        continue
                    at += 1
                    break
                word.append(line[at])
                at += 1
            assert at == len(line) or line[at] == " ", f"text glued to a string in {line!r}"
            words.append("".join(word))
        else:
            end = line.find(" ", at) % (len(line) + 1)
            word = line[at:end]
            assert all(char.isalnum() or char in "_./:=+@-" for char in word), word
            words.append(word)
            at = end
    return words


def test_powershell_typographic_quotes_do_not_end_the_string() -> None:
    """Before: only ASCII ' was doubled, so the U+2019 after x/ ended the string and
    Start-Process(...) ran as a command."""
    argv = ["python", "-m", "pip", "install", "--index-url", TYPOGRAPHIC + "/cu121", "torch"]
    assert powershell_words(quote_argv(argv, "powershell")) == argv
    plan = replace(CU121, index_url=TYPOGRAPHIC + "/cu121")
    words = powershell_words(command_lines(plan, "uv", "powershell")[0])
    assert words[words.index("--index-url") + 1] == plan.index_url


@pytest.mark.parametrize("fmt", ["uv-project", "poetry", "pixi", "conda"])
def test_snippets_stay_valid_whatever_the_url_holds(fmt: str) -> None:
    """Before: an astral character (U+1F600) became a JSON surrogate pair, invalid in TOML."""
    url = 'https://mirror.example/\U0001f600/\u00e9/"q"/back\\slash/\x7f\x01\t/cu121'
    plan = replace(CU121, index_url=url)
    text = render(plan, fmt)
    assert text.isascii()
    if fmt == "conda":
        import yaml

        document = yaml.safe_load(text)
        assert document["dependencies"][-1]["pip"][0] == f"--index-url {url}"
        return
    document = tomllib.loads(text)
    if fmt == "uv-project":
        assert document["tool"]["uv"]["index"][0]["url"] == url
    elif fmt == "poetry":
        assert document["tool"]["poetry"]["source"][0]["url"] == url
    else:
        assert document["pypi-dependencies"]["torch"]["index"] == url


def test_a_lone_surrogate_is_refused_not_written() -> None:
    """A non-UTF-8 byte in argv arrives as a lone surrogate, which no TOML string can hold."""
    with pytest.raises(EnvsetupError, match="not valid Unicode"):
        render(replace(CU121, index_url="https://mirror.example/\udcff/cu121"), "uv-project")


def test_cmd_quoting() -> None:
    assert quote_argv(["pip", "install", "torch==2.5.1+cu121", "a b&c"], "cmd") == (
        'pip install torch==2.5.1+cu121 "a b&c"'
    )
    for bad in ("100%", 'say "hi"', "wow!", "a^b"):
        with pytest.raises(EnvsetupError, match=r"cannot quote .* safely for cmd"):
            quote_argv(["pip", bad], "cmd")


def test_unknown_format_and_shell_are_usage_errors() -> None:
    with pytest.raises(EnvsetupError, match="expected one of pip, uv"):
        render(CU121, "npm")
    with pytest.raises(EnvsetupError, match="expected one of posix"):
        render(CU121, "pip", "fish")


# --- the real tools ------------------------------------------------------------------------------

BUILDS = [FakeBuild("2.5.1", "cu121"), FakeBuild("2.5.1", "cpu")]


def _served_plan(base: str) -> Plan:
    return replace(CU121, index_url=f"{base}/cu121")


def _run(argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, env=isolated_env(), timeout=120, cwd=cwd, check=False
    )


@NEEDS_PIP
def test_pip_line_runs_with_dry_run() -> None:
    with serve_fake_index(BUILDS) as served:
        argv = shlex.split(render(_served_plan(served.url), "pip"))
        argv[0] = sys.executable
        result = _run([*argv[:4], "--dry-run", "--ignore-installed", *argv[4:]])
    assert result.returncode == 0, result.stderr
    assert "Would install torch-2.5.1+cu121 torchvision-0.20.1+cu121" in result.stdout
    assert any("/cu121/torch/" in path for path in served.requests)


@pytest.mark.uv
def test_uv_line_runs_with_dry_run(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run(
        [uv_executable(), "venv", "-q", "--python", sys.executable, str(venv)],
        check=True,
        env=isolated_env(),
    )
    with serve_fake_index(BUILDS) as served:
        argv = shlex.split(render(_served_plan(served.url), "uv"))
        argv[0] = uv_executable()
        argv[argv.index("--python") + 1] = str(venv / "bin" / "python")
        result = _run([*argv, "--dry-run"])
    assert result.returncode == 0, result.stderr
    assert "+ torch==2.5.1+cu121" in result.stderr
    assert "+ torchvision==0.20.1+cu121" in result.stderr


@NEEDS_PIP
def test_requirements_file_installs_with_pip_dry_run(tmp_path: Path) -> None:
    with serve_fake_index(BUILDS) as served:
        (tmp_path / "requirements.txt").write_text(render(_served_plan(served.url), "requirements"))
        argv = shlex.split(command_lines(CU121, "requirements")[0])
        argv[0] = sys.executable
        result = _run([*argv[:4], "--dry-run", "--ignore-installed", *argv[4:]], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Would install torch-2.5.1+cu121 torchvision-0.20.1+cu121" in result.stdout


@pytest.mark.uv
def test_uv_project_block_locks_with_real_uv(tmp_path: Path) -> None:
    with serve_fake_index(BUILDS) as served:
        block = render(_served_plan(served.url), "uv-project")
        preamble = '[project]\nname = "demo"\nversion = "0"\nrequires-python = ">=3.9"\n'
        (tmp_path / "pyproject.toml").write_text(block.replace("[project]\n", preamble))
        result = _run([uv_executable(), "lock"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lock = tomllib.loads((tmp_path / "uv.lock").read_text())
    versions = {pkg["name"]: (pkg["version"], pkg["source"]) for pkg in lock["package"]}
    assert versions["torch"] == ("2.5.1+cu121", {"registry": f"{served.url}/cu121"})
    assert versions["torchvision"][0] == "0.20.1+cu121"


@NEEDS_PIP
def test_flat_mirror_line_runs_with_pip_dry_run(tmp_path: Path) -> None:
    build_wheels(FakeBuild("2.5.1", "cu121"), tmp_path / "cu121")
    plan = replace(FLAT, find_links=(tmp_path / "cu121").as_uri())
    argv = shlex.split(render(plan, "pip"))
    argv[0] = sys.executable
    result = _run([*argv[:4], "--dry-run", "--ignore-installed", *argv[4:]])
    assert result.returncode == 0, result.stderr
    assert "Would install torch-2.5.1+cu121 torchvision-0.20.1+cu121" in result.stdout
