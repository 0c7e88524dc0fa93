"""Run nox or tox as a user would (a subprocess of this interpreter) against a local mirror."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from support.fake_index import isolated_env


def mirror_env(index_url: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This machine's pip/uv configuration removed; envsetup's torch index is `index_url`
    (http:// allowed: the tests serve it on 127.0.0.1)."""
    return isolated_env(
        {"ENVSETUP_INDEX_URL": index_url, "ENVSETUP_ALLOW_INSECURE_INDEX": "1", **(extra or {})}
    )


def run_module(
    module: str, *args: str, cwd: Path, env: Mapping[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
