"""Read a package index listing of torch wheels and say what it knows that the matrices lack.

`envsetup matrix update` feeds this the listing of https://download.pytorch.org/whl/torch/ (PEP 503
HTML or PEP 691 JSON). Wheel file names carry everything needed: the release, the variant (local
version label, "+cu121"), the Python tags (cp311, cp313t) and the platform tag. Parsing is pure so
tests feed it files; only `read_listing` touches a file or the network.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from packaging.version import Version

from envsetup.errors import EnvsetupError, UsageError
from envsetup.matrices import PLATFORMS, VARIANT_RE, Matrices, variant_sort_key

#: Where upstream lists every torch wheel of every variant.
TORCH_LISTING_URL = "https://download.pytorch.org/whl/torch/"

#: PEP 691 content negotiation: JSON preferred, HTML accepted.
ACCEPT = (
    "application/vnd.pypi.simple.v1+json, "
    "application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
)


class ListingError(EnvsetupError):
    """The listing could not be read or is not a PEP 503/691 page."""


@dataclass(frozen=True)
class WheelFile:
    """What one wheel file name says."""

    filename: str
    version: Version  # public release, without the local label
    variant: str | None  # "cu121", "cpu", "rocm6.2"; None when the name carries no label
    pythons: tuple[str, ...]  # "3.11", "3.13t"; empty for py3-none wheels
    platform: str | None  # matrices platform key; None for tags the matrices do not model


@dataclass
class UpstreamRelease:
    """Everything the listing shows for one release."""

    version: Version
    pythons: dict[str, set[str]] = field(default_factory=dict)  # platform -> Pythons
    variants: dict[str, set[str]] = field(default_factory=dict)  # platform -> labelled variants

    def all_pythons(self) -> set[str]:
        return {python for pythons in self.pythons.values() for python in pythons}


@dataclass(frozen=True)
class Findings:
    """What upstream publishes that the matrices do not know."""

    releases: tuple[UpstreamRelease, ...]  # releases missing entirely
    variants: tuple[tuple[str, str, str], ...]  # (torch, platform, variant)
    pythons: tuple[tuple[str, str, str], ...]  # (torch, platform, python)

    def __bool__(self) -> bool:
        return bool(self.releases or self.variants or self.pythons)


# --- reading the listing --------------------------------------------------------------------------


class _Anchors(HTMLParser):
    """Collects (href, text) of every <a> in a PEP 503 page."""

    def __init__(self) -> None:
        super().__init__()
        self.anchors: list[tuple[str, str]] = []
        self._href: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._href = dict(attrs).get("href") or ""
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href is not None:
            self.anchors.append((self._href, "".join(self._text).strip()))
            self._href = None


def _name_from_href(href: str) -> str:
    path = urllib.parse.urlsplit(href).path
    return urllib.parse.unquote(path.rsplit("/", 1)[-1])


def file_names(text: str, content_type: str | None = None) -> list[str]:
    """The file names a PEP 691 JSON or PEP 503 HTML listing links to."""
    is_json = "json" in (content_type or "") or text.lstrip().startswith("{")
    if not is_json:
        parser = _Anchors()
        parser.feed(text)
        return [name if name else _name_from_href(href) for href, name in parser.anchors]
    try:
        document = json.loads(text)
    except ValueError as error:
        raise ListingError(f"the listing is not valid JSON: {error}") from None
    files = document.get("files") if isinstance(document, dict) else None
    if not isinstance(files, list):
        raise ListingError(
            "the JSON listing has no 'files' list",
            hint="expected a PEP 691 project page such as " + TORCH_LISTING_URL,
        )
    return [
        str(item["filename"]) for item in files if isinstance(item, dict) and "filename" in item
    ]


def _platform_key(tag: str) -> str | None:
    if tag == "win_amd64":
        return "windows-amd64"
    if tag.startswith("macosx_"):
        system = "macos"
    elif tag.startswith(("linux_", "manylinux", "musllinux")):
        system = "linux"
    else:
        return None
    for machine in ("x86_64", "aarch64", "arm64"):
        if tag.endswith("_" + machine) and f"{system}-{machine}" in PLATFORMS:
            return f"{system}-{machine}"
    return None


def _python(interpreter: str, abi: str) -> str | None:
    if not interpreter.startswith("cp") or not interpreter[2:].isdigit():
        return None
    digits = interpreter[2:]
    threaded = "t" if abi.endswith("t") and abi.startswith("cp") else ""
    return f"{digits[0]}.{digits[1:]}{threaded}"


def parse_wheel(filename: str) -> WheelFile | None:
    """The facts in one wheel file name, or None for anything that is not a wheel."""
    if not filename.endswith(".whl"):
        return None
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename  # lazy: ~10 ms

    try:
        _, version, _, tags = parse_wheel_filename(filename)
    except InvalidWheelFilename:
        return None
    label = version.local
    variant = label if label and VARIANT_RE.match(label) else None
    pythons = sorted({p for tag in tags if (p := _python(tag.interpreter, tag.abi))})
    platforms = {_platform_key(tag.platform) for tag in tags}
    platform = platforms.pop() if len(platforms) == 1 else None
    return WheelFile(filename, Version(version.public), variant, tuple(pythons), platform)


def wheels(text: str, content_type: str | None = None) -> list[WheelFile]:
    return [wheel for name in file_names(text, content_type) if (wheel := parse_wheel(name))]


def read_listing(
    source: str, timeout: float = 30.0, *, allow_insecure: bool = False
) -> tuple[str, str | None]:
    """The listing's text and content type, from a URL (https, file; http when `allow_insecure`)
    or a local path: a listing read over plain http could be rewritten on the way, and the
    release rows it suggests end up in matrices/."""
    if "://" not in source:
        try:
            return Path(source).read_text(encoding="utf-8"), None
        except (OSError, UnicodeDecodeError) as error:
            raise UsageError(
                f"cannot read the listing file {source}: {error}",
                hint="pass a saved PEP 503/691 page of " + TORCH_LISTING_URL,
            ) from None
    if urllib.parse.urlsplit(source).scheme not in ("http", "https", "file"):
        raise UsageError(
            f"unsupported listing URL {source!r}", hint="use https://, file:// or a path"
        )
    if urllib.parse.urlsplit(source).scheme == "http" and not allow_insecure:
        raise UsageError(
            f"listing URL {source!r} is plain http://",
            hint="use https://, or pass --allow-insecure-index (env "
            "ENVSETUP_ALLOW_INSECURE_INDEX=1) if you trust this network",
        )
    from urllib.error import URLError
    from urllib.request import Request, urlopen  # lazy: ~25 ms, only `matrix update` fetches

    request = Request(source, headers={"Accept": ACCEPT})
    try:
        with urlopen(request, timeout=timeout) as response:
            body: bytes = response.read()
            content_type = response.headers.get("Content-Type")
    except (URLError, OSError) as error:
        raise ListingError(
            f"could not read the index listing at {source}: {error}",
            hint="check the network or proxy, or save the page and pass --listing FILE",
        ) from None
    return body.decode("utf-8", errors="replace"), content_type


# --- comparing with the matrices ------------------------------------------------------------------


def summarize(files: Iterable[WheelFile]) -> dict[Version, UpstreamRelease]:
    """Group wheels by final release; pre-releases and dev builds are not matrix material."""
    releases: dict[Version, UpstreamRelease] = {}
    for wheel in files:
        if wheel.version.is_prerelease or wheel.version.is_devrelease or wheel.platform is None:
            continue
        release = releases.setdefault(wheel.version, UpstreamRelease(wheel.version))
        release.pythons.setdefault(wheel.platform, set()).update(wheel.pythons)
        if wheel.variant is not None:
            release.variants.setdefault(wheel.platform, set()).add(wheel.variant)
    return dict(sorted(releases.items()))


def missing_from(matrices: Matrices, upstream: dict[Version, UpstreamRelease]) -> Findings:
    """Releases, variants and Python tags upstream publishes that the matrices lack."""
    new_releases: list[UpstreamRelease] = []
    new_variants: list[tuple[str, str, str]] = []
    new_pythons: list[tuple[str, str, str]] = []
    for version, seen in upstream.items():
        known = matrices.release(version)
        if known is None:
            new_releases.append(seen)
            continue
        for platform, variants in sorted(seen.variants.items()):
            for variant in sorted(
                variants - set(known.variants.get(platform, ())), key=variant_sort_key
            ):
                new_variants.append((known.torch, platform, variant))
        for platform, pythons in sorted(seen.pythons.items()):
            for python in sorted(pythons - set(known.pythons(platform))):
                new_pythons.append((known.torch, platform, python))
    return Findings(tuple(new_releases), tuple(new_variants), tuple(new_pythons))
