"""An index that cannot be reached is a network failure, not "the index has no wheel"."""

from __future__ import annotations

import socket
import sys

import pytest
from support.fake_index import isolated_env, run_envsetup, uv_executable


def closed_port() -> int:
    """A 127.0.0.1 port nothing listens on (bound, then released): connections are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.mark.parametrize("installer", ["pip", pytest.param("uv", marks=pytest.mark.uv)])
def test_refused_connection_is_diagnosed_as_a_network_failure(installer: str) -> None:
    if installer == "uv":
        uv_executable()
    env = isolated_env({"PIP_RETRIES": "1", "UV_HTTP_RETRIES": "0"})  # pip warns on a retry
    result = run_envsetup(
        "install", "--python", sys.executable, "--installer", installer, "--gpu", "none",
        "--torch", "2.5.1", "--index-url-base", f"http://127.0.0.1:{closed_port()}",
        "--allow-insecure-index", "-q", env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "the index could not be reached" in result.stderr
    assert "a network failure, not a missing wheel" in result.stderr
    assert "the index has no wheel" not in result.stderr
