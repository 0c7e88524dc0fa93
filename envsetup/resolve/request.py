"""What the user asked for, checked: --torch, --with, requirement-file pins and index URLs.

Parsed without packaging.requirements (its grammar costs more start-up than the rest of a plan),
and wrong input ends in a UsageError that says what would be accepted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from packaging.version import Version

from envsetup.errors import UsageError
from envsetup.model.plan import TORCH_FAMILY, Request

if TYPE_CHECKING:
    from packaging.specifiers import SpecifierSet

    from envsetup.matrices.family import Package as FamilyPackage


#: Packages `--with` accepts; each is pinned to the version paired with the chosen torch.
COMPANIONS = tuple(name for name in TORCH_FAMILY if name != "torch")

_SAFE_SCHEMES = ("https://", "file://")


#: A PEP 508 name followed by a specifier ("torchvision>=0.20"); extras and markers are not
#: accepted (they mean nothing for a pin). Parsed here rather than with packaging.requirements,
#: whose grammar costs more start-up time than the rest of `envsetup plan`.
_NAMED = re.compile(r"([A-Za-z][A-Za-z0-9._-]*)\s*(.*)", re.DOTALL)


def _requirement(text: str) -> tuple[str | None, SpecifierSet]:
    """("torchvision", >=0.20) from "TorchVision>=0.20"; (None, spec) for a bare specifier."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    if len(text) > 200:  # also keeps int() below its digit limit (a ValueError otherwise)
        raise InvalidSpecifier(f"{len(text)} characters; a torch requirement is far shorter")
    match = _NAMED.fullmatch(text)
    name, rest = (match[1], match[2]) if match else (None, text)
    spec = SpecifierSet(rest)  # raises InvalidSpecifier
    return (None if name is None else re.sub(r"[-_.]+", "-", name).lower()), spec


def parse_torch_spec(text: str | None) -> SpecifierSet:
    """`2.5.1` → ==2.5.1, `2.5` → ==2.5.*, or any PEP 440 specifier / `torch<2.6` requirement."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    if text is None or not text.strip():
        return SpecifierSet()
    value = text.strip()
    try:
        version = Version(value)
    except ValueError:  # InvalidVersion, or a number too long for int()
        pass
    else:
        if len(version.release) == 2 and not version.is_prerelease and not version.local:
            return SpecifierSet(f"=={value}.*")
        return SpecifierSet(f"=={value}")
    try:
        name, spec = _requirement(value)
    except InvalidSpecifier as error:
        raise UsageError(
            f"--torch {value!r} is not a valid PEP 440 version or specifier ({error})",
            hint="use an exact version (2.5.1) or a specifier ('>=2.4,<2.6')",
        ) from None
    if name not in (None, "torch"):
        raise UsageError(
            f"--torch {value!r} names {name!r}; expected a torch version or specifier such as "
            "2.5.1, '>=2.4,<2.6' or 'torch~=2.5.0'"
        )
    return spec


def torch_pin(text: str | None) -> SpecifierSet | None:
    """The --torch constraint, or None for any release: the unpinned (usual) plan then never
    imports packaging.specifiers, ~15 ms of a ~80 ms `envsetup plan`."""
    if text is None or not text.strip():
        return None
    return parse_torch_spec(text) or None  # "torch" alone pins nothing


def parse_companions(items: Iterable[str]) -> dict[str, SpecifierSet]:
    """`torchvision`, `torchaudio>=2.5` → {name: specifier}; anything else is a usage error."""
    companions: dict[str, SpecifierSet] = {}
    for item in items:
        if not item.strip():
            continue
        try:
            name, spec = _requirement(item.strip())
        except ValueError as error:  # InvalidSpecifier; caught as its base to import it lazily
            raise UsageError(
                f"--with {item!r} is not a valid PEP 440 requirement ({error})",
                hint="list companions by name, e.g. --with torchvision,torchaudio",
            ) from None
        if name is None or (name not in COMPANIONS and _family_package(name) is None):
            from envsetup.matrices.family import load_family

            family = ", ".join(load_family().packages)
            raise UsageError(
                f"--with {item!r}: envsetup pins only {', '.join(COMPANIONS)} and the "
                f"PyTorch-index family in matrices/family.toml ({family})",
                hint="install other packages with your usual installer after torch",
            )
        companions[name] = spec
    return companions


def _check_url(url: str, what: str, allow_insecure: bool) -> str:
    if not allow_insecure and not url.startswith(_SAFE_SCHEMES):
        raise UsageError(
            f"{what} {url!r} is neither https:// nor file://",
            hint="use an https mirror, or pass --allow-insecure-index if you trust this network",
        )
    if any(char.isspace() for char in url):
        raise UsageError(f"{what} {url!r} contains whitespace; expected a URL")
    return url.rstrip("/")


def _user_constraints(
    request: Request, spec: SpecifierSet | None, companions: dict[str, SpecifierSet | None]
) -> SpecifierSet | None:
    """Fold the torch-family specifiers of the user's requirement files into the request:
    torch's into the torch specifier, a companion's into `--with` (it is then pinned too)."""
    if not request.constraints:
        return spec  # keeps the usual plan free of the specifier grammar's import
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    for name, specifier, origin in request.constraints:
        try:
            wanted = SpecifierSet(specifier)
        except InvalidSpecifier:
            raise UsageError(f"{origin}: {name}{specifier} is not a valid specifier") from None
        if name == "torch":
            spec = wanted if spec is None else spec & wanted
        elif name in COMPANIONS:
            have = companions.get(name)
            companions[name] = wanted if have is None else have & wanted
    return spec or None


def _family_package(name: str) -> FamilyPackage | None:
    """The family.toml row of a `--with` name beyond torchvision/torchaudio (read lazily)."""
    if name in COMPANIONS:
        return None
    from envsetup.matrices.family import load_family

    return load_family().get(name)
