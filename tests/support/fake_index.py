"""An offline stand-in for download.pytorch.org: small fake wheels served as PEP 503 on 127.0.0.1.

    with serve_fake_index(tmp_path, builds=[FakeBuild("2.5.1", "cu121")]) as base_url:
        # base_url + "/cu121" is a PEP 503 index with torch, torchvision and torchaudio
        subprocess.run([..., "--index-url-base", base_url, ...], env=isolated_env())

Wheels are built with `zipfile` from the sources in tests/support/fake_wheels/ (see
torch/__init__.py
there for the environment variables that simulate GPUs and drivers) and cached for the session,
because building them and the venvs that install them is the slow part on small CI machines.
`isolated_env()` strips this machine's pip/uv configuration so only the fake index is used.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import html
import http.server
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

SOURCES = Path(__file__).parent / "fake_wheels"
TAG = "py3-none-any"

#: Arch lists of the real wheels, close enough for the diagnosis tests.
DEFAULT_ARCHS = {
    "cu118": ("sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"),
    "cu121": ("sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"),
    "cu124": ("sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"),
    "cu126": ("sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"),
    "cu128": ("sm_70", "sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"),
    "cu130": ("sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120", "compute_120"),
}


@dataclass(frozen=True)
class FakeBuild:
    """One torch release in one variant, with the companions paired to it."""

    torch: str  # "2.5.1"
    variant: str  # "cpu", "cu121", "rocm6.2"
    archs: tuple[str, ...] | None = None  # None: DEFAULT_ARCHS for the variant
    torchvision: str | None = ""  # "": the paired version (0.(minor+15).patch); None: leave out
    torchaudio: str | None = ""  # "": same version as torch; None: leave out

    @property
    def local(self) -> str:
        return f"{self.torch}+{self.variant}"

    @property
    def cuda(self) -> str | None:
        if not self.variant.startswith("cu"):
            return None
        digits = self.variant[2:]
        return f"{digits[:-1]}.{digits[-1]}"

    @property
    def hip(self) -> str | None:
        return self.variant[4:] if self.variant.startswith("rocm") else None

    def companion_version(self, name: str) -> str | None:
        chosen = self.torchvision if name == "torchvision" else self.torchaudio
        if chosen != "":
            return chosen
        if name == "torchaudio":
            return self.torch
        major, minor, patch = self.torch.split(".")
        assert major == "2", "the torchvision pairing rule below holds for torch 2.x"
        return f"0.{int(minor) + 15}.{patch}"


@dataclass
class FakeIndex:
    """A built index directory; `wheels` maps "variant/project" to the wheel files in it."""

    root: Path
    wheels: dict[str, list[Path]] = field(default_factory=dict)


#: Two CPU releases, the older without torchaudio: what the install, venv and installer-fault
#: tests serve (newest by default, an older pin, a companion left out).
CPU_BUILDS = (FakeBuild("2.5.1", "cpu"), FakeBuild("2.5.0", "cpu", torchaudio=None))


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode()


def build_wheel(
    dest: Path,
    name: str,
    version: str,
    files: Mapping[str, str],
    requires: Sequence[str] = (),
    *,
    tag: str = TAG,
) -> Path:
    """Write a pure-Python wheel with correct METADATA, WHEEL and RECORD; return its path
    (`tag` other than py3-none-any: a wheel installers prefer to ours)."""
    stem = re.sub(r"[-_.]+", "_", name)  # a wheel's file and dist-info names: "trove_classifiers"
    dist_info = f"{stem}-{version}.dist-info"
    metadata = "".join(
        [
            "Metadata-Version: 2.1\n",
            f"Name: {name}\n",
            f"Version: {version}\n",
            "Summary: fake build for envsetup's tests\n",
            *(f"Requires-Dist: {requirement}\n" for requirement in requires),
        ]
    )
    wheel = f"Wheel-Version: 1.0\nGenerator: envsetup-tests\nRoot-Is-Purelib: true\nTag: {tag}\n"
    members = {
        **files,
        f"{dist_info}/METADATA": metadata,
        f"{dist_info}/WHEEL": wheel,
    }
    record = [
        f"{path},{_record_hash(text.encode())},{len(text.encode())}"
        for path, text in members.items()
    ]
    record.append(f"{dist_info}/RECORD,,")
    members[f"{dist_info}/RECORD"] = "\n".join(record) + "\n"
    path = dest / f"{stem}-{version}-{tag}.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, text in members.items():
            archive.writestr(member, text)
    return path


def _package_files(package: str, build_py: str) -> dict[str, str]:
    files = {
        f"{package}/{source.relative_to(SOURCES / package).as_posix()}": source.read_text()
        for source in sorted((SOURCES / package).rglob("*.py"))
    }
    files[f"{package}/_build.py"] = '"""Facts of this fake build."""\n\n' + build_py
    return files


def build_wheels(build: FakeBuild, dest: Path) -> dict[str, Path]:
    """The torch wheel of `build` and its companions, written to `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    archs = build.archs if build.archs is not None else DEFAULT_ARCHS.get(build.variant, ())
    torch_facts = (
        f"VERSION = {build.local!r}\nCUDA = {build.cuda!r}\nHIP = {build.hip!r}\n"
        f"ARCHS = {tuple(archs)!r}\n"
    )
    torch_files = _package_files("torch", torch_facts)
    wheels = {"torch": build_wheel(dest, "torch", build.local, torch_files)}
    for name in ("torchvision", "torchaudio"):
        version = build.companion_version(name)
        if version is None:
            continue
        local = f"{version}+{build.variant}"
        facts = f"VERSION = {local!r}\nTORCH = {build.local!r}\n"
        files = _package_files(name, facts)
        wheels[name] = build_wheel(dest, name, local, files, [f"torch=={build.local}"])
    return wheels


def _page(title: str, links: Sequence[tuple[str, str]]) -> str:
    anchors = "\n".join(f'<a href="{href}">{html.escape(text)}</a><br/>' for href, text in links)
    head = f"<!DOCTYPE html>\n<html><head><title>{title}</title></head><body>\n"
    return f"{head}{anchors}\n</body></html>\n"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _link_or_copy(source: Path, target: Path) -> None:
    """Real wheels are hundreds of MB: link them into the mirror where the filesystem allows."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def write_index(root: Path, wheels_by_variant: Mapping[str, Sequence[Path]]) -> FakeIndex:
    """Lay out wheels like download.pytorch.org/whl/<variant>/<project>/ with PEP 503 pages."""
    index = FakeIndex(root)
    for variant, wheels in wheels_by_variant.items():
        projects: dict[str, list[Path]] = {}
        for wheel in wheels:
            project = re.sub(r"[-_.]+", "-", wheel.name.split("-")[0]).lower()  # PEP 503
            projects.setdefault(project, []).append(wheel)
        for project, files in projects.items():
            directory = root / variant / project
            directory.mkdir(parents=True, exist_ok=True)
            links = []
            for wheel in sorted(files):
                target = directory / wheel.name
                if not target.exists():
                    _link_or_copy(wheel, target)
                links.append((f"{quote(wheel.name)}#sha256={_sha256(target)}", wheel.name))
            (directory / "index.html").write_text(_page(f"Links for {project}", links))
            index.wheels[f"{variant}/{project}"] = [directory / w.name for w in sorted(files)]
        project_links = [(f"{project}/", project) for project in sorted(projects)]
        (root / variant).mkdir(parents=True, exist_ok=True)
        (root / variant / "index.html").write_text(_page("Simple index", project_links))
    return index


_CACHE: dict[tuple[FakeBuild, ...], Path] = {}
_CACHE_ROOT: list[Path] = []


def _cache_root() -> Path:
    if not _CACHE_ROOT:
        _CACHE_ROOT.append(Path(tempfile.mkdtemp(prefix="envsetup-fake-index-")))
        import atexit

        atexit.register(shutil.rmtree, _CACHE_ROOT[0], True)
    return _CACHE_ROOT[0]


def build_index(builds: Sequence[FakeBuild]) -> Path:
    """The index directory for `builds`, built once per process and reused."""
    key = tuple(builds)
    if key not in _CACHE:
        root = _cache_root() / f"index-{len(_CACHE)}"
        by_variant: dict[str, list[Path]] = {}
        for build in builds:
            wheels = build_wheels(build, root / ".wheels" / build.variant / build.torch)
            by_variant.setdefault(build.variant, []).extend(wheels.values())
        write_index(root, by_variant)
        _CACHE[key] = root
    return _CACHE[key]


class _Handler(http.server.SimpleHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        for fragment, delay in self.server.slow.items():
            if fragment in self.path and self.path.endswith(".whl"):
                self.server.slow_hit.set()
                self.server.closing.wait(delay)
        wanted = self.headers.get("Range")
        if wanted and self.server.ranges and self._send_range(wanted):
            return
        super().do_GET()

    def _send_range(self, wanted: str) -> bool:
        """Answer `Range: bytes=A-B` / `bytes=-N` with 206, as PyPI's file host does."""
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", wanted.strip())
        path = Path(self.translate_path(self.path))
        if match is None or not path.is_file():
            return False
        data = path.read_bytes()
        first, last = match.groups()
        start = max(0, len(data) - int(last)) if not first else int(first)
        end = len(data) - 1 if not first or not last else min(int(last), len(data) - 1)
        self.server.ranged.append(wanted)
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        self.wfile.write(data[start : end + 1])
        return True

    def log_message(self, format: str, *args: object) -> None:
        return


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A client killed mid-download (the interrupt tests) is expected, not an error."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]

    def __init__(self, root: Path, slow: Mapping[str, float], ranges: bool = True) -> None:
        self.requests: list[str] = []
        self.ranges = ranges  # False: ignore Range headers like a plain static server
        self.ranged: list[str] = []  # the Range headers answered with 206
        self.slow = dict(slow)
        self.slow_hit = threading.Event()
        self.closing = threading.Event()
        super().__init__(
            ("127.0.0.1", 0),
            lambda *args: _Handler(*args, directory=str(root)),  # type: ignore[arg-type]
        )


@dataclass
class Served:
    """A running fake index: `url` is the base to pass as `--index-url-base`."""

    url: str
    root: Path
    server: _Server

    @property
    def requests(self) -> list[str]:
        return self.server.requests

    @property
    def flags(self) -> list[str]:
        """The envsetup flags that make plan/install/venv use this index."""
        return ["--index-url-base", self.url, "--allow-insecure-index"]

    @property
    def slow_hit(self) -> threading.Event:
        """Set when a download listed in `slow=` has started (and is being held back)."""
        return self.server.slow_hit


@contextlib.contextmanager
def serve_index(
    root: Path, *, slow: Mapping[str, float] | None = None, ranges: bool = True
) -> Iterator[Served]:
    """Serve `root` on 127.0.0.1 (ephemeral port) until the block ends.

    `slow={"torch-": 30}` holds back matching wheel downloads so a test can interrupt an install.
    """
    server = _Server(root, slow or {}, ranges)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield Served(f"http://{host}:{port}", root, server)
    finally:
        server.closing.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextlib.contextmanager
def serve_fake_index(
    builds: Sequence[FakeBuild], *, slow: Mapping[str, float] | None = None
) -> Iterator[Served]:
    """Build (or reuse) the wheels of `builds` and serve them as a fake download.pytorch.org."""
    with serve_index(build_index(builds), slow=slow) as served:
        yield served


def index_fixture(builds: Sequence[FakeBuild], *, scope: str = "module") -> Any:
    """A pytest fixture serving `builds`: `index = index_fixture([FakeBuild("2.5.1", "cpu")])`."""
    import pytest

    @pytest.fixture(scope=scope)  # type: ignore[misc]
    def index() -> Iterator[Served]:
        with serve_fake_index(builds) as served:
            yield served

    return index


def isolated_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """os.environ without this machine's pip/uv configuration, so only our index is used
    (ENVSETUP_CACHE_DIR and ENVSETUP_INSTALLER stay: tests/conftest.py sets them for the suite)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PIP_", "UV_", "ENVSETUP_", "FAKE_TORCH_", "CUDA_VISIBLE"))
        and key not in ("PYTHONPATH", "VIRTUAL_ENV", "CONDA_PREFIX", "CONDA_DEFAULT_ENV")
    }
    for kept in ("ENVSETUP_CACHE_DIR", "ENVSETUP_INSTALLER"):  # both set by tests/conftest.py
        if kept in os.environ:
            env[kept] = os.environ[kept]
    env.update(
        {
            "PIP_CONFIG_FILE": os.devnull,
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PIP_NO_INPUT": "1",
            "PIP_NO_CACHE_DIR": "1",
            "UV_NO_CONFIG": "1",
            "UV_NO_CACHE": "1",
            "UV_PYTHON_DOWNLOADS": "never",
        }
    )
    env.update(extra or {})
    return env


#: Why a test that runs uv was skipped.
UV_MISSING = "needs uv, on PATH or next to this Python (`pip install uv`; it is in the test extra)"


def uv_executable() -> str:
    """The uv envsetup's executors would run (`install.find_uv`); where there is none, the calling
    test (or fixture, or the `uv` marker's setup in conftest) is skipped with UV_MISSING."""
    import pytest

    from envsetup.errors import EnvsetupError
    from envsetup.install.run import find_uv

    try:
        return find_uv()
    except EnvsetupError:
        pytest.skip(UV_MISSING)


def unpack(wheel: Path, target: Path) -> Path:
    """Unzip a wheel into `target`: an "installed" copy to put on PYTHONPATH, without a venv."""
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(target)
    return target


def run_envsetup(
    *args: str, env: Mapping[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """`python -m envsetup ARGS` as a real process, as users run it."""
    return subprocess.run(
        [sys.executable, "-m", "envsetup", *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
