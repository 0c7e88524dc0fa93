"""`ComputeCapability`: an NVIDIA GPU architecture as two numbers, parsed once, compared as such.

As text, "10.0" sorts before "8.6" and "sm_86" is no version at all; as a value, 10.0 > 8.6 and
every spelling users and tools write ("8.6", "86", "sm_86", "sm86") is the same 8.6.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["ComputeCapability"]

# ASCII digits only (re.ASCII): "٨.٦" is no compute capability.
_SPELLING = re.compile(r"(?:sm_?)?(\d{1,2})\.?(\d)", re.IGNORECASE | re.ASCII)


@dataclass(frozen=True, order=True)
class ComputeCapability:
    """major.minor, ordered numerically; `str()` is the "8.6" form `detect --json` writes."""

    major: int
    minor: int

    @classmethod
    def parse(cls, text: str) -> ComputeCapability:
        """8.6 from "8.6", "86", "sm_86" or "SM86"; ValueError for anything else."""
        match = _SPELLING.fullmatch(text.strip())
        if match is None:
            raise ValueError(f"{text!r} is not a compute capability; expected e.g. 8.6 or sm_86")
        return cls(int(match[1]), int(match[2]))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"

    @property
    def arch(self) -> str:
        """torch's name of the architecture ("sm_86"), as `get_arch_list()` prints it."""
        return f"sm_{self.major}{self.minor}"
