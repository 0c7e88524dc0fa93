"""A fake torchvision whose compiled ops only load with the exact torch it was built against.

A real torchvision built for another torch fails at import with "operator torchvision::nms does
not exist" (its C++ ops register against torch's ABI); this one fails the same way.
"""

from __future__ import annotations

import torch

from torchvision._build import TORCH, VERSION

if torch.__version__ != TORCH:
    raise RuntimeError("operator torchvision::nms does not exist")

from torchvision import ops  # only after the ABI check, like the real package

__version__ = VERSION
__all__ = ["__version__", "ops"]
