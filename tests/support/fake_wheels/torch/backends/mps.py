"""torch.backends.mps: available when FAKE_TORCH_MPS=1."""

from __future__ import annotations

import os


def is_available() -> bool:
    return os.environ.get("FAKE_TORCH_MPS") == "1"
