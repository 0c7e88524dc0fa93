"""A fake `torch` for the plugin tests: it answers what the plugin asks, driven by env vars.

FAKE_TORCH_VERSION   "2.13.0+cpu" (default)       -> torch.__version__
FAKE_TORCH_CUDA      "13.0" or unset               -> torch.version.cuda (unset: CPU or ROCm build)
FAKE_TORCH_HIP       "6.2" or unset                -> torch.version.hip
FAKE_TORCH_GPUS      "NVIDIA H100 80GB HBM3:81079:9.0;Tesla T4:15360:7.5" (name:MiB:cc)
                     -> the GPUs the driver would show; CUDA_VISIBLE_DEVICES (HIP_VISIBLE_DEVICES
                     for a ROCm build) filters them by index, like the real runtime does
FAKE_TORCH_ARCHS     "sm_80,sm_90"                 -> torch.cuda.get_arch_list()
FAKE_TORCH_MPS       "1"                           -> torch.backends.mps.is_available()
FAKE_TORCH_IMPORT_LOG  a file path; each import appends one line, so tests can count imports
"""

from __future__ import annotations

import os

from torch import backends, cuda, version

__version__ = os.environ.get("FAKE_TORCH_VERSION", "2.13.0+cpu")
__all__ = ["__version__", "backends", "cuda", "device", "version"]

if os.environ.get("FAKE_TORCH_IMPORT_LOG"):
    with open(os.environ["FAKE_TORCH_IMPORT_LOG"], "a") as _log:
        _log.write(f"{os.getpid()}\n")


class device:  # lower case, like torch.device
    """`torch.device("cuda:1")` / `torch.device("cuda", 1)` with `.type`, `.index`, str()."""

    def __init__(self, spec: str, index: int | None = None) -> None:
        kind, _, number = spec.partition(":")
        if kind not in ("cpu", "cuda", "mps", "xpu", "meta"):
            raise RuntimeError(f"Expected one of cpu, cuda, mps, xpu device type: {spec}")
        self.type = kind
        self.index = int(number) if number else index

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self) -> str:
        return f"device(type={self.type!r}" + (
            ")" if self.index is None else f", index={self.index})"
        )

    def __eq__(self, other: object) -> bool:
        return str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))
