"""Only the plan chooses where torch comes from, by pip's and uv's own reading rules.

pip reads every `PIP_*` variable case-folded and its configuration files; uv reads its exact
`UV_*` names and uv.toml/pyproject.toml. Each rule is checked against the real tool here, and
the attacks end to end: an "evil" index serving a torch the installers prefer to the planned
one (same version, a more specific wheel tag), named by a variable spelled as pip allows or by a
configuration file, must never be read.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.fake_index import (
    FakeBuild,
    Served,
    build_wheel,
    isolated_env,
    serve_fake_index,
    serve_index,
    uv_executable,
    write_index,
)

from envsetup.install import isolation
from envsetup.install.isolation import PIP_ROUTING, announce, isolate

#: A tag pip and uv rank above the planned wheels' py3-none-any for the venv's Python.
PREFERRED_TAG = f"py{sys.version_info.major}{sys.version_info.minor}-none-any"


def spellings(option: str) -> list[str]:
    """Names pip reads as `option`: anything after `PIP_`, lower-cased, `_` for `-`."""
    words = option.split("-")
    names = [
        "PIP_" + "_".join(words).upper(),
        "PIP_" + "_".join(words),
        "PIP_" + "_".join(word.capitalize() for word in words),
        "PIP_" + option,
        "PIP_" + option.upper(),
    ]
    return list(dict.fromkeys(names))


@pytest.fixture(autouse=True)
def untold(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sees its own notice: they are said once per process."""
    monkeypatch.setattr(isolation, "_TOLD", set())


@pytest.fixture
def home(tmp_path: Path) -> dict[str, str]:
    """An environment whose pip/uv configuration lives under tmp_path, not this machine's (which
    has a pip.conf and PIP_FIND_LINKS): HOME, XDG_CONFIG_HOME and XDG_CONFIG_DIRS point there."""
    env = isolated_env()
    del env["PIP_CONFIG_FILE"], env["UV_NO_CONFIG"]
    env.update(
        HOME=str(tmp_path / "home"),
        XDG_CONFIG_HOME=str(tmp_path / "home" / ".config"),
        XDG_CONFIG_DIRS=str(tmp_path / "etc"),
    )
    return env


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def pip_config(env: dict[str, str], cwd: Path) -> str:
    """What pip itself reads from variables and files (`pip config list`)."""
    return subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_every_spelling_pip_reads_is_left_out_and_said(
    tmp_path: Path, home: dict[str, str]
) -> None:
    names = [name for option in sorted(PIP_ROUTING) for name in spellings(option)]
    environ = {**home, **dict.fromkeys(names, "https://evil.example/simple")}
    environ.update(pip_extra_index_url="x", Pip_Find_Links="y")  # pip does not read these
    result = isolate(environ, cwd=tmp_path)
    assert not set(names) & set(result.environ)
    assert result.environ["pip_extra_index_url"] == "x" and result.environ["Pip_Find_Links"] == "y"
    assert result.ignored[: len(names)] == tuple(names)
    assert result.notice is not None and result.notice.startswith(
        f"envsetup: ignoring {', '.join(names)}"
    )
    assert all(result.changes[name] is None for name in names)  # nox removes None


def test_pip_itself_reads_every_spelling_and_nothing_of_them_after_isolation(
    tmp_path: Path, home: dict[str, str]
) -> None:
    """Before: PIP_Extra_Index_Url and PIP_extra_index_url passed an exact-spelling filter and pip
    read them as --extra-index-url (so installed an evil torch from there)."""
    routing = dict.fromkeys(spellings("extra-index-url"), "https://evil.example/simple")
    routing.update(PIP_find_links="/evil", PIP_Requirement="/evil.txt", PIP_constraint="/e.txt")
    kept = {"PIP_Default_Timeout": "33", "PIP_CERT": "/certs.pem"}
    env = {**home, **routing, **kept}
    seen = pip_config(env, tmp_path)
    for option in ("extra-index-url", "find-links", "requirement", "constraint"):
        assert f":env:.{option}=" in seen  # the spellings are live for pip
    isolated = pip_config(isolate(env, cwd=tmp_path).environ, tmp_path)
    assert "evil" not in isolated, isolated
    assert ":env:.default-timeout='33'" in isolated and ":env:.cert='/certs.pem'" in isolated


def test_network_settings_of_pip_files_are_kept_and_routing_ones_dropped(
    tmp_path: Path, home: dict[str, str]
) -> None:
    """pip's files are not read at all (PIP_CONFIG_FILE=os.devnull); what they say about reaching
    an index comes along as variables, a variable the user set still winning."""
    write(
        Path(home["XDG_CONFIG_DIRS"]) / "pip" / "pip.conf",
        "[global]\nproxy = http://proxy.local:3128\ntimeout = 5\nfind-links = /evil\n",
    )
    user = write(
        Path(home["XDG_CONFIG_HOME"]) / "pip" / "pip.conf",
        "[global]\ncert = /ca.pem\nclient_cert = /me.pem\ntrusted-host = a.local\n  b.local\n"
        "[install]\nextra-index-url = https://evil.example/simple\nretries = 9\ntimeout = 7\n"
        "[download]\nfind-links = /not-for-install\n",
    )
    env = {**home, "PIP_TIMEOUT": "60"}
    result = isolate(env, cwd=tmp_path)
    assert result.environ["PIP_CONFIG_FILE"] == "/dev/null" or sys.platform == "win32"
    assert result.environ["PIP_PROXY"] == "http://proxy.local:3128"
    assert result.environ["PIP_CERT"] == "/ca.pem"
    assert result.environ["PIP_CLIENT_CERT"] == "/me.pem"
    assert result.environ["PIP_TRUSTED_HOST"].split() == ["a.local", "b.local"]
    assert result.environ["PIP_RETRIES"] == "9"
    assert result.environ["PIP_TIMEOUT"] == "60"  # the user's variable, not a file's
    assert f"extra-index-url in {user}" in result.ignored
    assert any(item.startswith("find-links in ") for item in result.ignored)
    assert "not-for-install" not in str(result.ignored)
    seen = pip_config(result.environ, tmp_path)
    assert "evil" not in seen and ":env:.proxy='http://proxy.local:3128'" in seen
    assert "trusted-host" in seen and "'/ca.pem'" in seen


def test_uv_reads_its_variables_by_exact_name(
    indexes: tuple[Served, Served], tmp_path: Path, home: dict[str, str]
) -> None:
    """Why uv variables are matched exactly: uv 0.13.9 on Linux reads UV_EXTRA_INDEX_URL but not
    UV_Extra_Index_Url or uv_extra_index_url (on Windows, names ignore case)."""
    if sys.platform == "win32":
        pytest.skip("Windows variable names ignore case")
    uv = uv_executable()
    good, bad = indexes
    venv = [uv, "venv", "-q", "--python", sys.executable, str(tmp_path / "v")]
    subprocess.run(venv, env=isolated_env(), check=True)  # this Python: the fake wheels' tag

    def bad_hits(variables: dict[str, str]) -> int:
        bad.requests.clear()
        argv = [uv, "pip", "install", "--python", str(tmp_path / "v" / "bin" / "python"),
                "--index-url", f"{good.url}/cpu", "torch==2.5.1+cpu", "--reinstall"]  # fmt: skip
        subprocess.run(argv, env=isolated_env(variables), capture_output=True, check=True)
        return len(bad.requests)

    evil = f"{bad.url}/cpu"
    assert bad_hits({"UV_Extra_Index_Url": evil, "uv_extra_index_url": evil, "UV_index": evil}) == 0
    assert bad_hits({"UV_EXTRA_INDEX_URL": evil}) > 0
    result = isolate({**home, "UV_Extra_Index_Url": evil, "UV_EXTRA_INDEX_URL": evil}, cwd=tmp_path)
    assert "UV_EXTRA_INDEX_URL" not in result.environ and "UV_Extra_Index_Url" in result.environ
    assert result.ignored[0] == "UV_EXTRA_INDEX_URL" and "UV_Extra" not in str(result.ignored)


def test_uv_files_are_switched_off_and_their_network_settings_kept(
    tmp_path: Path, home: dict[str, str]
) -> None:
    project = write(
        tmp_path / "project" / "pyproject.toml",
        '[project]\nname = "p"\nversion = "1"\n[[tool.uv.index]]\nname = "evil"\n'
        'url = "https://evil.example/simple"\n[tool.uv.pip]\ntorch-backend = "cu121"\n',
    )
    user = write(
        Path(home["XDG_CONFIG_HOME"]) / "uv" / "uv.toml",
        'native-tls = true\nallow-insecure-host = ["a.local", "b.local"]\n'
        'extra-index-url = ["https://evil.example/simple"]\n',
    )
    explicit = write(tmp_path / "c.toml", 'find-links = ["/evil"]\n')
    env = {**home, "UV_CONFIG_FILE": str(explicit)}  # read by uv even with UV_NO_CONFIG
    result = isolate(env, cwd=project.parent / "sub")
    assert result.environ["UV_NO_CONFIG"] == "1" and "UV_CONFIG_FILE" not in result.environ
    assert result.environ["UV_NATIVE_TLS"] == "true"
    assert result.environ["UV_INSECURE_HOST"] == "a.local b.local"
    assert result.ignored == (
        "UV_CONFIG_FILE",
        f"extra-index-url in {user}",
        f"index in {project}",
        f"torch-backend in {project}",
        f"find-links in {explicit}",
    )
    assert result.kept[-2:] == ("native-tls", "allow-insecure-host")  # (and /etc/pip.conf's)
    assert result.notice is not None and "native-tls, allow-insecure-host)" in result.notice


def test_the_notice_is_said_once_per_run(tmp_path: Path, home: dict[str, str]) -> None:
    said: list[str] = []
    for _ in range(3):  # a venv's steps, nox's or tox's sessions
        announce(isolate({**home, "PIP_Find_Links": "/x"}, cwd=tmp_path), said.append)
    assert len(said) == 1
    assert said[0].startswith(
        "envsetup: ignoring PIP_Find_Links: torch comes only from the planned"
    )


@pytest.fixture(scope="module")
def indexes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, Served]]:
    """The planned index, and an attacker's whose torch (same version and label, a more
    specific tag) pip and uv prefer wherever they see both."""
    root = tmp_path_factory.mktemp("evil")
    (root / "wheels").mkdir()
    files = {"torch/__init__.py": "EVIL = 1\n__version__ = '2.5.1+cpu'\n"}
    evil = build_wheel(root / "wheels", "torch", "2.5.1+cpu", files, tag=PREFERRED_TAG)
    write_index(root / "index", {"cpu": [evil]})
    with serve_fake_index([FakeBuild("2.5.1", "cpu")]) as good, serve_index(root / "index") as bad:
        yield good, bad


def evil_installed(python: Path) -> bool:
    code = "import torch; print(hasattr(torch, 'EVIL'))"
    check = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    return check.stdout.strip() == "True"


def test_pip_prefers_the_evil_wheel_when_it_reads_the_config(
    tmp_path: Path, home: dict[str, str], indexes: tuple[Served, Served]
) -> None:
    """The attack is real: without isolation, pip installs the evil torch next to the plan's
    --index-url, so the tests below prove something."""
    good, bad = indexes
    config = write(tmp_path / "pip.conf", f"[global]\nextra-index-url = {bad.url}/cpu\n")
    target = tmp_path / "target"
    argv = [sys.executable, "-m", "pip", "install", "--target", str(target),
            "--index-url", f"{good.url}/cpu", "torch==2.5.1+cpu"]  # fmt: skip
    env = {**home, "PIP_CONFIG_FILE": str(config)}
    subprocess.run(argv, env=env, capture_output=True, check=True)
    assert (target / "torch-2.5.1+cpu.dist-info").is_dir()
    assert "EVIL" in (target / "torch" / "__init__.py").read_text()


def venv(
    tmp_path: Path, env: dict[str, str], good: Served, installer: str
) -> subprocess.CompletedProcess[str]:
    """`envsetup venv` as users run it, from a project directory under tmp_path."""
    argv = [sys.executable, "-m", "envsetup", "venv", str(tmp_path / "env"),
            "--installer", installer, "--torch", "2.5.1", "--gpu", "none", *good.flags]  # fmt: skip
    (tmp_path / "project").mkdir(exist_ok=True)
    project = tmp_path / "project"
    return subprocess.run(
        argv, env=env, cwd=project, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.mark.parametrize("where", ["PIP_CONFIG_FILE", "user", "global"])
def test_a_pip_config_never_supplies_torch(
    tmp_path: Path, home: dict[str, str], indexes: tuple[Served, Served], where: str
) -> None:
    """Before: pip read the config's extra index or find-links page next to the planned index,
    installed the evil torch, and envsetup said 'torch from … (never an extra index)'."""
    good, bad = indexes
    text = (
        f"[global]\nextra-index-url = {bad.url}/cpu\ntimeout = 30\n"
        f"[install]\nfind-links = {bad.url}/cpu/torch/\n"
    )
    env = dict(home)
    if where == "PIP_CONFIG_FILE":
        config = write(tmp_path / "pip.conf", text)
        env["PIP_CONFIG_FILE"] = str(config)
    elif where == "user":
        config = write(Path(home["XDG_CONFIG_HOME"]) / "pip" / "pip.conf", text)
    else:
        config = write(Path(home["XDG_CONFIG_DIRS"]) / "pip" / "pip.conf", text)
    bad.requests.clear()
    result = venv(tmp_path, env, good, "pip")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert bad.requests == []
    assert not evil_installed(tmp_path / "env" / "bin" / "python")
    assert f"extra-index-url, find-links in {config}" in output
    assert "timeout" in output.split("(kept: ", 1)[1].split(")")[0].split(", ")
    assert output.count("envsetup: ignoring") == 1  # once, though venv runs two steps


@pytest.mark.uv
@pytest.mark.parametrize("where", ["pyproject", "uv.toml", "user", "UV_CONFIG_FILE"])
def test_a_uv_config_never_supplies_torch(
    tmp_path: Path, home: dict[str, str], indexes: tuple[Served, Served], where: str
) -> None:
    """Before: uv took the evil torch from `[[tool.uv.index]]` in the project, an
    extra-index-url in uv.toml (its own, the user's, or UV_CONFIG_FILE's)."""
    good, bad = indexes
    evil = f"{bad.url}/cpu"
    env = dict(home)
    if where == "pyproject":
        config = write(
            tmp_path / "pyproject.toml",
            f'[project]\nname = "p"\nversion = "1"\n'
            f'[[tool.uv.index]]\nname = "e"\nurl = "{evil}"\n',
        )
        shown = f"index in {config}"
    else:
        path = {
            "uv.toml": tmp_path / "project" / "uv.toml",
            "user": Path(home["XDG_CONFIG_HOME"]) / "uv" / "uv.toml",
            "UV_CONFIG_FILE": tmp_path / "chosen.toml",
        }[where]
        config = write(path, f'[pip]\nextra-index-url = ["{evil}"]\n')
        shown = f"extra-index-url in {config}"
        if where == "UV_CONFIG_FILE":
            env["UV_CONFIG_FILE"] = str(config)
    bad.requests.clear()
    result = venv(tmp_path, env, good, "uv")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert bad.requests == []
    assert not evil_installed(tmp_path / "env" / "bin" / "python")
    assert shown in output and output.count("envsetup: ignoring") == 1
