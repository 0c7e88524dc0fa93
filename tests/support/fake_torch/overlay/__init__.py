"""The fake torch of tests/support/fake_wheels (moved to `_core`) plus an import log."""

from __future__ import annotations

import os

from torch._core import *  # noqa: F403 - the base fake's public names
from torch._core import __all__, __version__  # noqa: F401 - re-exported as the fake's own

if os.environ.get("FAKE_TORCH_IMPORT_LOG"):
    with open(os.environ["FAKE_TORCH_IMPORT_LOG"], "a") as _log:
        _log.write(f"{os.getpid()}\n")
