"""The test suite keeps off the user's own envsetup state, and says why it skips (conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from support.fake_index import UV_MISSING, isolated_env, uv_executable

from envsetup.matrices import user_cache


def test_the_tests_and_their_subprocesses_leave_the_users_cache_alone() -> None:
    """ENVSETUP_CACHE_DIR is a temporary directory of the test run, kept by the isolated
    environment the CLI subprocesses get: ~/.cache/envsetup is never written."""
    cache = user_cache.cache_directory()
    assert cache is not None and Path(tempfile.gettempdir()) in cache.parents, cache
    code = "from envsetup.matrices import user_cache; print(user_cache.cache_directory())"
    child = subprocess.run(
        [sys.executable, "-c", code], env=isolated_env(), capture_output=True, text=True, check=True
    )
    assert child.stdout.strip() == str(cache)


def test_a_developers_opt_ins_do_not_change_the_cli_defaults_under_test() -> None:
    assert "ENVSETUP_ALLOW_INSECURE_INDEX" not in os.environ
    assert "ENVSETUP_INDEX_URL" not in os.environ


def test_without_uv_a_uv_test_is_skipped_saying_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the GPU machine the uv fixtures failed with FileNotFoundError for <python dir>/uv."""
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    with pytest.raises(pytest.skip.Exception, match="needs uv") as skipped:
        uv_executable()
    assert str(skipped.value) == UV_MISSING


@pytest.mark.uv
def test_the_uv_marker_finds_the_uv_envsetup_runs() -> None:
    assert Path(uv_executable()).name.startswith("uv")
