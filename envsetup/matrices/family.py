"""The PyTorch-index family beyond torchvision/torchaudio, from `matrices/family.toml`.

torchao, xformers, fbgemm-gpu, torchcodec, ... ship compiled code built against one torch, so
`--with torchao` must pin the release made for the chosen torch and install it from the same
index. The pairings are data (each with its evidence or source); this module only reads them and
answers "which release pairs with torch X, and if none, why". It is read only when `--with` names
a family package, so the usual `plan` never parses it.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.version import Version

from envsetup.matrices import default_directory
from envsetup.matrices._toml import _Row
from envsetup.matrices.schema import MatricesError

__all__ = ["FILE", "Family", "Package", "Pair", "load_family"]

FILE = "family.toml"
#: How a package's pairs were established (matrices/README.md "family.toml").
RULES = ("metadata", "table", "torch-metadata", "nightly")


@dataclass(frozen=True)
class Pair:
    """One release of a family package and the torch releases it was built for."""

    version: str
    torch: str  # PEP 440 specifier: "==2.9.1", "==2.10.*", ">=2"
    confirmed: bool
    evidence: str  # what the registry's wheel says, or the documented table's URL

    def admits(self, torch: Version) -> bool:
        from packaging.specifiers import SpecifierSet

        return SpecifierSet(self.torch).contains(torch.public, prereleases=True)

    @property
    def torch_text(self) -> str:
        """ "2.3.*" from "==2.3.*": how messages name the torch a pair was built for."""
        return (
            self.torch[2:] if self.torch.startswith("==") and "," not in self.torch else self.torch
        )


@dataclass(frozen=True)
class Package:
    """One family package: its pairing rule, where its wheels exist, and its pairs."""

    name: str
    rule: str
    source: str
    pairs: tuple[Pair, ...]  # ascending by version
    platforms: tuple[str, ...] = ()  # empty: pure Python, every platform
    notes: str = ""

    def pair(self, torch: Version) -> Pair | None:
        """The newest release built for `torch`, or None."""
        return next((pair for pair in reversed(self.pairs) if pair.admits(torch)), None)

    def refusal(self, torch: Version, platform: str) -> str | None:
        """Why no release of this package goes with `torch` on `platform` (None: one does)."""
        if self.rule == "nightly":
            return (
                f"{self.name} is published only on the nightly index, for nightly torch "
                f"(--channel nightly); stable torch {torch} pairs with triton (--with triton)"
            )
        if self.platforms and platform not in self.platforms:
            return f"{self.name} has no wheels for {platform} (has {', '.join(self.platforms)})"
        if self.pair(torch) is not None:
            return None
        if not self.pairs:
            return f"{self.name} has no release recorded in matrices/{FILE}"
        first, last = self.pairs[0], self.pairs[-1]
        side = (
            f"the first is {first.version} for torch {first.torch_text}"
            if _below(torch, first)
            else f"the last is {last.version} for torch {last.torch_text}"
        )
        return f"{self.name} has no release for torch {torch}; {side}"


def _below(torch: Version, pair: Pair) -> bool:
    """Whether `torch` is older than every torch `pair` admits (its specifier's lowest bound)."""
    bound = pair.torch.lstrip("=<>~!").split(",")[0].rstrip(".*")
    try:
        return torch < Version(bound)
    except ValueError:
        return False


@dataclass(frozen=True)
class Family:
    """Every family package, by normalised name."""

    packages: dict[str, Package]

    def get(self, name: str) -> Package | None:
        return self.packages.get(name)


def _pair(row: _Row) -> Pair:
    confirmed = row.flag("confirmed", True)
    evidence = row.text("evidence") if confirmed else row.text("source")
    return Pair(row.text("version"), row.text("torch"), confirmed, evidence)


def _package(row: _Row) -> Package:
    rule = row.text("rule")
    if rule not in RULES:
        raise row.fail("rule", " or ".join(RULES))
    items = row.data.get("pairs", [])
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise row.fail("pairs", "an array of inline tables")
    name = row.text("name")
    pairs = tuple(_pair(_Row(item, f"{row.where} pairs #{n + 1}")) for n, item in enumerate(items))
    return Package(
        name=name,
        rule=rule,
        source=row.text("source"),
        pairs=pairs,
        platforms=row.texts("platforms"),
        notes=row.text("notes", ""),
    )


def parse(document: dict[str, Any]) -> Family:
    items = document.get("package", [])
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise MatricesError(f"{FILE}: [[package]] must be an array of tables")
    packages = [
        _package(_Row(item, f"{FILE} [[package]] #{n + 1}")) for n, item in enumerate(items)
    ]
    return Family({package.name: package for package in packages})


@functools.lru_cache(maxsize=4)
def load_family(directory: Path | None = None) -> Family:
    """family.toml from the matrices directory (the bundled data by default)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.9/3.10 only
        import tomli as tomllib

    path = (directory or default_directory()) / FILE
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MatricesError(
            f"compatibility data not found: {path}",
            hint=f"reinstall envsetup, or restore matrices/{FILE} from git",
        ) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise MatricesError(f"{path} is not valid TOML: {error}") from None
    return parse(document)
