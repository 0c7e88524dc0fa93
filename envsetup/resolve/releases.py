"""What the matrices say about one release for this machine: its variants, companion pairs,
PyPI-served builds, and which releases a --torch pin admits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from envsetup.model.variants import Variant
from envsetup.resolve.request import _family_package

if TYPE_CHECKING:
    from packaging.specifiers import SpecifierSet

    from envsetup.matrices.schema import Release
    from envsetup.resolve.context import _Context


def _candidates(context: _Context, spec: SpecifierSet | None) -> list[Release]:
    """Releases matching `spec`, newest first; unconfirmed ones only when pinned."""
    pinned = spec is not None
    return [
        release
        for release in reversed(context.matrices.releases)
        if _matches(spec, release) and (release.confirmed or pinned)
    ]


def _matches(spec: SpecifierSet | None, release: Release) -> bool:
    return spec is None or spec.contains(str(release.version), prereleases=True)


def _torch(spec: SpecifierSet | None) -> str:
    """`torch>=2.4` for a pinned request, `torch` for an unpinned one (messages and pins)."""
    return "torch" if spec is None else f"torch{spec}"


def _variants(release: Release, platform: str) -> tuple[str, ...]:
    return tuple(release.variants.get(platform, ()))


def _companion(release: Release, name: str) -> str | None:
    if name == "torchvision":
        return release.torchvision
    if name == "torchaudio":
        return release.torchaudio
    family = _family_package(name)
    pair = None if family is None else family.pair(release.version)
    return None if pair is None else pair.version


def _family_confirmed(name: str, release: Release) -> bool:
    family = _family_package(name)
    pair = None if family is None else family.pair(release.version)
    return pair is not None and pair.confirmed


def _served_by_pypi(context: _Context, release: Release, variant: Variant) -> bool:
    """macOS wheels and Windows CPU wheels come from PyPI; Linux always uses the index."""
    if context.os == "linux":
        return False
    return release.pypi_default.get(context.platform) == variant.name
