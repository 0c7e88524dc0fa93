"""GPU product name or PCI device id → compute capability, from `matrices/gpus.toml`.

Probes that read NVML or a recent `nvidia-smi` learn the compute capability directly; a pasted
table, an `nvidia-smi -L` list, an old CSV or a machine without NVML only knows the GPU's name (or
its PCI id). Without the capability the resolver cannot check the wheel's arch list, so these
paths fill it in here — and say so when a GPU is not in the table, instead of guessing.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from envsetup.model.machine import Gpu

__all__ = ["GpuTable", "check_capabilities", "fill_capabilities", "load_table", "normalise_name"]

FILE = "gpus.toml"

#: Words nvidia-smi adds around a product's name: brand prefixes, memory sizes, form factors,
#: laptop markers, edition words. Dropped before matching so one table name covers them all.
_NOISE = frozenset(
    [
        "nvidia",
        "tesla",
        "geforce",
        "quadro",
        "gpu",
        "laptop",
        "mobile",
        "max",
        "q",
        "with",
        "design",
        "sxm",
        "sxm2",
        "sxm3",
        "sxm4",
        "sxm5",
        "sxm6",
        "pcie",
        "fhhl",
        "nvl",
        "hbm",
        "hbm2",
        "hbm2e",
        "hbm3",
        "hbm3e",
        "edition",
        "workstation",
        "server",
        "generation",
        "lhr",
        "dgxs",
        "oem",
        "ac",
    ]
)
_MEMORY = re.compile(r"^\d+(g|gb)$")


def normalise_name(name: str) -> str:
    """ "Tesla V100-SXM2-16GB" → "v100", "NVIDIA GeForce RTX 4090 Laptop GPU" → "rtx 4090"."""
    words = re.split(r"[\s\-_/(),]+", name.lower())
    return " ".join(w for w in words if w and w not in _NOISE and not _MEMORY.match(w))


@dataclass(frozen=True)
class GpuModel:
    """One row of gpus.toml."""

    names: tuple[str, ...]
    cc: str
    pci: tuple[int, ...]
    source: str


@dataclass(frozen=True)
class GpuTable:
    """The rows, indexed by normalised name and by PCI device id."""

    models: tuple[GpuModel, ...]

    @functools.cached_property
    def _by_name(self) -> dict[str, GpuModel]:
        return {normalise_name(name): model for model in self.models for name in model.names}

    @functools.cached_property
    def _by_pci(self) -> dict[int, GpuModel]:
        return {device: model for model in self.models for device in model.pci}

    def by_name(self, name: str) -> GpuModel | None:
        """The model `name` names; a name nvidia-smi's table cut short ("NVIDIA GeForce RTX
        2080 ...") matches when every product it could be shares one compute capability."""
        text = name.strip()
        cut = text.rstrip(".…")
        if cut == text:
            return self._by_name.get(normalise_name(text))
        start = normalise_name(cut)
        candidates = {
            model.cc: model for key, model in self._by_name.items() if key.startswith(start)
        }
        return next(iter(candidates.values())) if start and len(candidates) == 1 else None

    def by_pci(self, device: int) -> GpuModel | None:
        return self._by_pci.get(device)

    @functools.cached_property
    def capabilities(self) -> tuple[str, ...]:
        """Every compute capability some GPU in the table has, lowest first."""
        return tuple(sorted({model.cc for model in self.models}, key=_capability_key))


def _capability_key(cc: str) -> tuple[int, int]:
    major, minor = cc.split(".")
    return int(major), int(minor)


def check_capabilities(capabilities: Sequence[str], table: GpuTable | None = None) -> None:
    """Refuse a capability no known GPU has (`--compute-cap 99` read as 9.9): planned as given,
    it would be reported as covered by wheels whose arch lists only approximate it."""
    table = table or load_table()
    for cc in capabilities:
        if cc in table.capabilities:
            continue
        from envsetup.errors import UsageError

        key = _capability_key(cc)
        below = [known for known in table.capabilities if _capability_key(known) < key][-2:]
        above = [known for known in table.capabilities if _capability_key(known) > key][:2]
        raise UsageError(
            f"no GPU in matrices/{FILE} has compute capability {cc}; the known ones nearest "
            f"to it: {', '.join(below + above)}",
            hint="pass the capability nvidia-smi reports (`nvidia-smi --query-gpu=compute_cap "
            f"--format=csv`); a GPU newer than the table needs a row in matrices/{FILE}",
        )


@functools.lru_cache(maxsize=4)
def load_table(directory: Path | None = None) -> GpuTable:
    """gpus.toml from the matrices directory; read only when some GPU lacks its capability."""
    from envsetup.matrices import default_directory
    from envsetup.matrices.schema import MatricesError

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.9/3.10 only
        import tomli as tomllib

    path = (directory or default_directory()) / FILE
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
        models = tuple(
            GpuModel(
                names=tuple(row["names"]),
                cc=str(row["cc"]),
                pci=tuple(int(device, 16) for device in row.get("pci", ())),
                source=str(row["source"]),
            )
            for row in document["gpu"]
        )
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise MatricesError(
            f"{path}: cannot read the GPU table ({error})",
            hint="reinstall envsetup, or restore matrices/gpus.toml from git",
        ) from None
    return GpuTable(models)


def fill_capabilities(
    gpus: Sequence[Gpu], table: GpuTable | None = None
) -> tuple[tuple[Gpu, ...], tuple[str, ...], tuple[str, ...]]:
    """Each NVIDIA GPU with its compute capability filled in from its name where unknown.

    Returns (gpus, evidence lines "NAME → X.Y (source)", warnings for names not in the table).
    """
    table = table or load_table()  # detect calls this only when some GPU lacks its capability
    filled: list[Gpu] = []
    found: list[str] = []
    unknown: list[str] = []
    for gpu in gpus:
        if gpu.compute_capability or gpu.vendor != "nvidia":
            filled.append(gpu)
            continue
        model = None if gpu.name is None else table.by_name(gpu.name)
        if model is None:
            what = f"GPU {gpu.name!r}" if gpu.name else f"GPU {gpu.index} (no name)"
            unknown.append(f"compute capability unknown for {what}; pass --compute-cap")
            filled.append(gpu)
            continue
        found.append(f"{gpu.name} → {model.cc} ({model.source})")
        filled.append(dataclasses.replace(gpu, compute_capability=model.cc))
    return tuple(filled), tuple(found), tuple(unknown)
