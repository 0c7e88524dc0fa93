"""The test suite keeps off the user's own envsetup state (tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from fake_index import isolated_env

from envsetup import matrices


def test_the_tests_and_their_subprocesses_leave_the_users_cache_alone() -> None:
    """ENVSETUP_CACHE_DIR is a temporary directory of the test run, kept by the isolated
    environment the CLI subprocesses get: ~/.cache/envsetup is never written."""
    cache = matrices.cache_directory()
    assert cache is not None and Path(tempfile.gettempdir()) in cache.parents, cache
    code = "import envsetup.matrices as m; print(m.cache_directory())"
    child = subprocess.run(
        [sys.executable, "-c", code], env=isolated_env(), capture_output=True, text=True, check=True
    )
    assert child.stdout.strip() == str(cache)


def test_a_developers_opt_ins_do_not_change_the_cli_defaults_under_test() -> None:
    assert "ENVSETUP_ALLOW_INSECURE_INDEX" not in os.environ
    assert "ENVSETUP_INDEX_URL" not in os.environ
