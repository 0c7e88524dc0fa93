"""Shared fixtures: paths to the real sample outputs kept under tests/data.

Also, before anything is collected (modules load the matrices at import): the parsed-matrices
cache goes to a temporary directory of this test process instead of the user's ~/.cache/envsetup
(subprocesses inherit it; a test that wants another sets its own), and opt-ins a developer may
have exported for real use do not leak into the CLI defaults the tests check. Tests marked
`uv` are skipped, saying why, where no uv can be found the way envsetup finds it. The fuzz
tests' settings profile is registered here, where the command line can be read.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings
from support.fake_index import isolated_env, uv_executable

DATA = Path(__file__).parent / "data"
#: Small foreign projects that tests/integration/test_plugin_compat.py runs in subprocesses; their
#: conftests
#: define --device & co., so this suite must not load them.
collect_ignore = ["compat_projects"]

#: Variables that change the CLI's defaults; tests that need them set them explicitly. An
#: activated environment is one: it becomes the target of `plan`, `install` and `verify`.
_USER_SETTINGS = (
    "ENVSETUP_ALLOW_INSECURE_INDEX",
    "ENVSETUP_INDEX_URL",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "CONDA_DEFAULT_ENV",
)


def pytest_configure(config: pytest.Config) -> None:
    cache = tempfile.mkdtemp(prefix="envsetup-test-cache-")
    os.environ["ENVSETUP_CACHE_DIR"] = cache
    config.add_cleanup(lambda: shutil.rmtree(cache, ignore_errors=True))
    for name in _USER_SETTINGS:
        os.environ.pop(name, None)
    # `--installer auto` picks uv wherever uv is on PATH (an activated CI venv has it): the suite
    # pins pip so a test's expectation does not depend on PATH; tests of `auto` unset this.
    os.environ["ENVSETUP_INSTALLER"] = "pip"
    config.addinivalue_line("markers", "uv: runs the uv executable; skipped where there is none")
    # Fuzz runs are derandomized so CI sees the same cases every time; `--hypothesis-seed N`
    # explores the cases seed N draws instead (hypothesis lets `derandomize` win over a seed).
    seeded = config.getoption("--hypothesis-seed", None) is not None
    settings.register_profile("envsetup-fuzz", derandomize=not seeded, database=None)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("uv"):
        uv_executable()


@pytest.fixture
def data_dir() -> Path:
    return DATA


@pytest.fixture
def env() -> dict[str, str]:
    """The environment for a pip/uv/envsetup subprocess that must see only the fake index."""
    return isolated_env()
