"""The package registry as `matrix verify` reads it: PEP 691/503 listings, wheels read by
HTTP range requests (a full download when the server ignores `Range`), and the evidence cache
that keeps what was read per file name, so a re-run touches the network only for new files.

The only network code in envsetup; everything is imported lazily, by `matrix verify` alone.
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envsetup import settings
from envsetup.errors import EnvsetupError
from envsetup.matrices.index_listing import WheelFile, parse_wheel

#: The registry `pip install torch` reads by default.
DEFAULT_INDEX = "https://pypi.org/simple/"
#: Where downloads and what was read from them are kept (override: ENVSETUP_EVIDENCE_CACHE).
CACHE_VARIABLE = "ENVSETUP_EVIDENCE_CACHE"


_ACCEPT = "application/vnd.pypi.simple.v1+json, text/html;q=0.1"
_BLOCK = 1 << 20  # range requests read at least this much: zip directories come in one request


class EvidenceError(EnvsetupError):
    """The registry or a wheel could not be read the way the verifier needs."""


@dataclass(frozen=True)
class RegistryFile:
    """One wheel in the registry's listing: the name's facts plus where to fetch it."""

    wheel: WheelFile
    url: str
    requires_python: str | None  # data-requires-python / "requires-python", when listed
    upload_time: str | None = None  # PEP 700 "upload-time" (JSON listings only)


def _urlopen(request: Any, timeout: float) -> Any:
    from urllib.request import urlopen  # lazy: only `matrix verify` touches the network

    return urlopen(request, timeout=timeout)


def _get(url: str, headers: Mapping[str, str], timeout: float) -> tuple[int, Any, bytes]:
    """Status, headers and body of one GET; network failures become EvidenceError."""
    from urllib.error import URLError
    from urllib.request import Request

    try:
        with _urlopen(Request(url, headers=dict(headers)), timeout) as response:
            return response.status, response.headers, response.read()
    except (URLError, OSError) as error:
        raise EvidenceError(
            f"could not read {url}: {error}",
            hint="check the network, the proxy, or pass --index for a registry you can reach",
        ) from None


def project_files(index: str, project: str, timeout: float = 60.0) -> list[RegistryFile]:
    """Every wheel of `project` the registry lists (PEP 691 JSON, or PEP 503 HTML)."""
    url = urllib.parse.urljoin(index.rstrip("/") + "/", project + "/")
    _, headers, body = _get(url, {"Accept": _ACCEPT}, timeout)
    text = body.decode("utf-8", errors="replace")
    links = _links(text, headers.get("Content-Type") or "", url)
    found = []
    for filename, href, requires_python, uploaded in links:
        wheel = parse_wheel(filename)
        if wheel is not None:
            address = urllib.parse.urljoin(url, href)
            found.append(RegistryFile(wheel, address, requires_python, uploaded))
    return found


def _links(
    text: str, content_type: str, base: str
) -> list[tuple[str, str, str | None, str | None]]:
    """(file name, href, requires-python, upload-time) of every file a listing page links to."""
    if "json" in content_type or text.lstrip().startswith("{"):
        try:
            files = json.loads(text)["files"]
        except (ValueError, KeyError, TypeError):
            raise EvidenceError(
                f"{base} is not a PEP 691 project page (no 'files' list)",
                hint="point --index at a simple index root such as " + DEFAULT_INDEX,
            ) from None
        return [
            (f["filename"], f["url"], f.get("requires-python"), f.get("upload-time")) for f in files
        ]
    from html.parser import HTMLParser

    found: list[tuple[str, str, str | None, str | None]] = []

    class Anchors(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            values = dict(attrs)
            if tag == "a" and values.get("href"):
                href = str(values["href"])
                name = urllib.parse.unquote(urllib.parse.urlsplit(href).path.rsplit("/", 1)[-1])
                found.append((name, href, values.get("data-requires-python"), None))

    Anchors().feed(text)
    return found


class _NoRanges(Exception):
    """The server answered a range request with the whole file."""


class RangeFile(io.RawIOBase):
    """A remote file read with HTTP `Range` requests, seekable so `zipfile` can open it."""

    def __init__(self, url: str, timeout: float = 120.0) -> None:
        super().__init__()
        self.url, self.timeout = url, timeout
        self.position = 0
        self.requests = 0
        self._block: tuple[int, bytes] = (0, b"")
        self.size = self._probe()

    def _range(self, header: str) -> tuple[Any, bytes]:
        self.requests += 1
        status, headers, body = _get(self.url, {"Range": header}, self.timeout)
        if status != 206:
            raise _NoRanges
        return headers, body

    def _probe(self) -> int:
        headers, body = self._range(f"bytes=-{_BLOCK}")
        total = str(headers.get("Content-Range", "")).rpartition("/")[2]
        if not total.isdigit():
            raise _NoRanges
        self._block = (int(total) - len(body), body)
        return int(total)

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.position, 2: self.size}[whence]
        self.position = base + offset
        return self.position

    def readinto(self, buffer: Any) -> int:
        wanted = min(len(buffer), self.size - self.position)
        if wanted <= 0:
            return 0
        start, block = self._block
        if not (start <= self.position and self.position + wanted <= start + len(block)):
            end = min(self.size, self.position + max(wanted, _BLOCK)) - 1
            _, block = self._range(f"bytes={self.position}-{end}")
            start = self.position
            self._block = (start, block)
        piece = block[self.position - start : self.position - start + wanted]
        buffer[: len(piece)] = piece
        self.position += len(piece)
        return len(piece)


@dataclass
class WheelFacts:
    """What one wheel says about itself (cached per file name as JSON)."""

    requires_python: str | None = None
    requires_dist: list[str] = field(default_factory=list)
    version_py: dict[str, str] = field(default_factory=dict)  # __version__, cuda, hip, ...
    sass: list[str] | None = None  # "sm_90": SASS in most fatbins; None: not read
    sass_partial: list[str] = field(default_factory=list)  # SASS of only a few kernels
    ptx: list[str] | None = None  # "compute_90": PTX in most fatbins
    ptx_partial: list[str] = field(default_factory=list)
    cuda_library: str | None = None  # the member the arch list was read from
    read_by: str = ""  # "range" or "download"


class EvidenceCache:
    """Downloads and per-wheel facts under one directory outside the project."""

    def __init__(self, root: Path | None = None) -> None:
        if root is None:
            from envsetup.matrices.user_cache import user_cache_home

            configured = settings.get(CACHE_VARIABLE)
            base = user_cache_home() or Path.home() / ".cache"
            root = Path(configured) if configured else base / "envsetup-evidence"
        self.root = root

    def _facts_path(self, filename: str, kind: str) -> Path:
        return self.root / "facts" / f"{filename}.{kind}.json"

    def load(self, filename: str, kind: str) -> WheelFacts | None:
        try:
            return WheelFacts(**json.loads(self._facts_path(filename, kind).read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def store(self, filename: str, kind: str, facts: WheelFacts) -> None:
        path = self._facts_path(filename, kind)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(facts.__dict__, indent=1))
        temporary.replace(path)

    def download(self, url: str, filename: str, timeout: float) -> Path:
        """The whole file, for servers without range support (kept for the next run)."""
        target = self.root / "wheels" / filename
        if target.exists():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        from urllib.request import Request

        try:
            with (
                _urlopen(Request(url), timeout) as response,
                tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as out,
            ):
                shutil.copyfileobj(response, out, 1 << 22)
        except OSError as error:
            raise EvidenceError(f"could not download {url}: {error}") from None
        Path(out.name).replace(target)
        return target
