"""torch.version: the CUDA / HIP toolkit the fake build was made with."""

from __future__ import annotations

import os

cuda = os.environ.get("FAKE_TORCH_CUDA") or None
hip = os.environ.get("FAKE_TORCH_HIP") or None
