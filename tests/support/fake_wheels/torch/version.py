"""torch.version: what the build was compiled with."""

from __future__ import annotations

from torch._build import CUDA, HIP, VERSION

__version__ = VERSION
cuda = CUDA
hip = HIP
