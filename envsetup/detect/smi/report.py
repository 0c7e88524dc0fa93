"""What reading one nvidia-smi text gives: the SmiReport, the size bound on a text, and the
`unparseable` problem every reader reports the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

from envsetup.model.machine import Gpu, Problem

#: Longer texts are cut here: every real output fits many times over, and a bound keeps a
#: pasted log (or a hostile input) from costing seconds.
MAX_CHARS = 2_000_000


@dataclass(frozen=True)
class SmiReport:
    """What one `nvidia-smi` output says. `cuda_version` is the newest CUDA the driver
    supports, exactly as printed ("13.0"), or None when the output shows none."""

    format: str
    driver_version: str | None = None
    cuda_version: str | None = None
    gpus: tuple[Gpu, ...] = ()
    problems: tuple[Problem, ...] = ()
    nvml_version: str | None = None


def _unparseable(message: str) -> Problem:
    return Problem("unparseable", message, _UNPARSEABLE_HINT)


_UNPARSEABLE_HINT = (
    "Paste the complete, unedited output of `nvidia-smi` (or `nvidia-smi -q`), or set "
    "ENVSETUP_CUDA_DRIVER_VERSION to the driver version."
)
