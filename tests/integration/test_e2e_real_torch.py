"""End to end with the real CPU torch wheel: `envsetup venv` from a local mirror, then `verify`.

The wheels come from a wheelhouse named by ENVSETUP_TEST_WHEELHOUSE (torch 2.13.0+cpu for
CPython 3.11 and its dependencies), laid out as a mirror of download.pytorch.org/whl/cpu and
served on 127.0.0.1; tests never reach the internet. CI fills the wheelhouse first.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from support.fake_index import isolated_env, run_envsetup, serve_index, write_index

TORCH = "2.13.0"

pytestmark = pytest.mark.slow


def wheelhouse() -> Path:
    value = os.environ.get("ENVSETUP_TEST_WHEELHOUSE")
    if not value:
        pytest.skip(
            "ENVSETUP_TEST_WHEELHOUSE is not set: fill one with "
            f"`python -m pip download torch=={TORCH}+cpu --index-url "
            "https://download.pytorch.org/whl/cpu -d .cache/wheelhouse` (the CPU build; PyPI's "
            "is the multi-GB CUDA one) and point it there"
        )
    found = list(Path(value).glob(f"torch-{TORCH}+cpu-cp311-*.whl"))
    if not found:
        pytest.skip(f"no torch-{TORCH}+cpu-cp311 wheel in {value}")
    return Path(value)


def python311() -> str:
    if sys.version_info[:2] == (3, 11):
        return sys.executable
    found = shutil.which("python3.11")
    if found is None:
        pytest.skip("the real torch wheel is for CPython 3.11 and none is on PATH")
    return found


@pytest.mark.uv
def test_venv_then_verify_with_the_real_cpu_wheel(tmp_path: Path) -> None:
    house = wheelhouse()
    python = python311()
    mirror = write_index(tmp_path / "mirror", {"cpu": sorted(house.glob("*.whl"))}).root
    env = isolated_env()
    target = tmp_path / "env"
    with serve_index(mirror) as served:
        created = run_envsetup(
            "venv", str(target), "--python", python, "--installer", "uv", "--torch", TORCH,
            "--gpu", "none", "--index-url-base", served.url, "--allow-insecure-index",
            env=env, timeout=600,
        )  # fmt: skip
    assert created.returncode == 0, created.stdout[-3000:] + created.stderr[-3000:]
    assert f"torch=={TORCH}+cpu" in created.stderr
    assert "ok    round_trip:cpu" in created.stderr

    checked = run_envsetup(
        "verify", "--python", str(target / "bin" / "python"), "--gpu", "none", "--bench",
        "--json", "--expect", f"torch=={TORCH}", "--expect-variant", "cpu", env=env, timeout=600,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    report = json.loads(checked.stdout)
    assert report["ok"] is True
    assert report["torch"] == f"{TORCH}+cpu" and report["variant"] == "cpu"
    assert report["cuda"] is None and report["devices"] == []
    checks = {check["name"]: check for check in report["checks"]}
    assert checks["round_trip:cpu"]["ok"] and "max |diff|" in checks["round_trip:cpu"]["detail"]
    assert checks["expect"]["ok"]
    assert report["bench"]["cpu"]["gflops"] > 0
    assert report["bench"]["devices"] == []
