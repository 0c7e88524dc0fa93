"""Variant names ("cu121", "rocm6.2.4", "cpu", "xpu") as small comparable values.

Users, environment variables and other tools spell the same build many ways ("cu121", "cu12.1",
"cuda12.1", "CUDA-12.1"); the resolver compares them by CUDA or ROCm version, never as strings
("cu130" < "cu92" as text). Variants of different kinds do not order against each other.
`version_tuple` reads the dotted versions those comparisons meet (CUDA, ROCm, driver, compute
capability) the same way everywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["KINDS", "Variant", "parse_variant", "version_tuple"]

KINDS = ("cpu", "cuda", "rocm", "xpu")

#: How users are told a build kind or accelerator backend ("CUDA 12.4 build", "CPU-only build",
#: "needs ROCm"): the one table of these words.
KIND_LABELS = {"cpu": "CPU-only", "cuda": "CUDA", "rocm": "ROCm", "xpu": "XPU", "mps": "MPS"}

_CUDA_COMPACT = re.compile(r"cu(\d{2,3})")  # cu80, cu118, cu130: the last digit is the minor
_CUDA_DOTTED = re.compile(r"(?:cu|cuda)[-_]?(\d{1,2})\.(\d{1,2})")
_CUDA_WORD = re.compile(r"cuda[-_]?(\d{2,3})")
_ROCM = re.compile(r"rocm[-_]?(\d+)\.(\d+)(?:\.(\d+))?")
_EXPECTED = "expected cpu, xpu, cuXY (cu121, cu12.1, cuda12.1) or rocmX.Y[.Z] (rocm6.2, rocm6.2.4)"


@dataclass(frozen=True)
class Variant:
    """One build flavour of the PyTorch wheels; `version` is () for cpu and xpu."""

    kind: str
    version: tuple[int, ...] = ()

    @property
    def name(self) -> str:
        """The canonical name used by download.pytorch.org and the matrices ("cu121")."""
        if self.kind == "cuda":
            major, minor = self.version
            return f"cu{major}{minor}"
        if self.kind == "rocm":
            return "rocm" + ".".join(str(part) for part in self.version)
        return self.kind

    @property
    def cuda(self) -> str | None:
        """ "12.1" for cu121; None for non-CUDA variants."""
        if self.kind != "cuda":
            return None
        return f"{self.version[0]}.{self.version[1]}"

    @property
    def cuda_major(self) -> int | None:
        return self.version[0] if self.kind == "cuda" else None

    @property
    def is_gpu(self) -> bool:
        return self.kind != "cpu"

    def _key(self, other: Variant) -> tuple[tuple[int, ...], tuple[int, ...]]:
        if other.kind != self.kind:
            raise TypeError(f"cannot order {self.name} against {other.name}: different kinds")
        return self.version, other.version

    def __lt__(self, other: Variant) -> bool:
        mine, theirs = self._key(other)
        return mine < theirs

    def __le__(self, other: Variant) -> bool:
        mine, theirs = self._key(other)
        return mine <= theirs

    def __gt__(self, other: Variant) -> bool:
        mine, theirs = self._key(other)
        return mine > theirs

    def __ge__(self, other: Variant) -> bool:
        mine, theirs = self._key(other)
        return mine >= theirs

    def __str__(self) -> str:
        return self.name


def parse_variant(text: str) -> Variant:
    """Parse any common spelling; ValueError says what was expected."""
    value = text.strip().lower()
    if value in ("cpu", "xpu"):
        return Variant(value)
    match = _CUDA_DOTTED.fullmatch(value)
    if match:
        major, minor = int(match[1]), int(match[2])
        if minor > 9:  # "cuda1.10" would be named cu110, which is CUDA 11.0
            raise ValueError(
                f"unknown variant {text!r}: CUDA {major}.{minor} has no variant name (the last "
                f"digit of cuXY is the minor version); {_EXPECTED}"
            )
        return Variant("cuda", (major, minor))
    match = _CUDA_COMPACT.fullmatch(value) or _CUDA_WORD.fullmatch(value)
    if match:
        digits = match[1]
        return Variant("cuda", (int(digits[:-1]), int(digits[-1])))
    match = _ROCM.fullmatch(value)
    if match:
        parts = tuple(int(part) for part in match.groups() if part is not None)
        return Variant("rocm", parts)
    raise ValueError(f"unknown variant {text!r}; {_EXPECTED}")


def version_tuple(text: str, width: int = 2) -> tuple[int, ...]:
    """ "535.104.05" → (535, 104, 5): numbers compare where strings do not ("13.0" > "9.2").

    Parts that are not plain digits are skipped; zeros pad to `width`, so "12" and "12.0" are
    equal and `[:2]` is always (major, minor). Stdlib only: the plugin reads it at load.
    """
    parts = tuple(int(part) for part in text.split(".") if part.isdigit())
    return parts + (0,) * (width - len(parts))
