"""A fake torchaudio: its extension library fails to load against any other torch build."""

from __future__ import annotations

import torch

from torchaudio._build import TORCH, VERSION

if torch.__version__ != TORCH:
    raise OSError(
        "libtorchaudio.so: undefined symbol: _ZN3c104cuda29c10_cuda_check_implementationEiPKcS2_ib"
    )

__version__ = VERSION
__all__ = ["__version__"]
