"""Shared fixtures: paths to the real sample outputs kept under tests/data.

Also, before anything is collected (modules load the matrices at import): the parsed-matrices
cache goes to a temporary directory of this test process instead of the user's ~/.cache/envsetup
(subprocesses inherit it; a test that wants another sets its own), and opt-ins a developer may
have exported for real use do not leak into the CLI defaults the tests check.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"

#: Variables that change the CLI's defaults; tests that need them set them explicitly.
_USER_SETTINGS = ("ENVSETUP_ALLOW_INSECURE_INDEX", "ENVSETUP_INDEX_URL")


def pytest_configure(config: pytest.Config) -> None:
    cache = tempfile.mkdtemp(prefix="envsetup-test-cache-")
    os.environ["ENVSETUP_CACHE_DIR"] = cache
    config.add_cleanup(lambda: shutil.rmtree(cache, ignore_errors=True))
    for name in _USER_SETTINGS:
        os.environ.pop(name, None)


@pytest.fixture
def data_dir() -> Path:
    return DATA
