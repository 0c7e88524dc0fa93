"""The fake torch of tests/fake_wheels (moved to `_core`) plus `device`, `backends`, import log."""

from __future__ import annotations

import os

from torch import backends
from torch._core import *  # noqa: F403 - the base fake's public names
from torch._core import __version__

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

    def __eq__(self, other: object) -> bool:
        return str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))


__all__ = ["__version__", "backends", "device"]
