"""torch.backends: only `mps` is faked."""

from __future__ import annotations

from torch.backends import mps

__all__ = ["mps"]
