"""A fake torch for the pytest-plugin tests, installed into a directory put on the path.

It is the fake of tests/support/fake_wheels/torch (the simulated CUDA runtime `envsetup verify` is
tested
against, driven by FAKE_TORCH_GPUS and CUDA_VISIBLE_DEVICES) with an import log laid over it
(FAKE_TORCH_IMPORT_LOG=file: one line per import, so tests can prove torch stayed unimported).
A dist-info makes `importlib.metadata` report the version, as for an installed wheel.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).parent
BASE = HERE.parent / "fake_wheels" / "torch"


def install(
    site: Path,
    version: str = "2.13.0+cpu",
    *,
    cuda: str | None = None,
    hip: str | None = None,
    archs: Sequence[str] = (),
) -> Path:
    """Write torch `version` (built for `cuda`/`hip`, kernels for `archs`) into `site`."""
    package = site / "torch"
    shutil.copytree(BASE, package, ignore=shutil.ignore_patterns("__pycache__"))
    (package / "__init__.py").rename(package / "_core.py")
    shutil.copytree(HERE / "overlay", package, dirs_exist_ok=True)
    (package / "_build.py").write_text(
        f"VERSION = {version!r}\nCUDA = {cuda!r}\nHIP = {hip!r}\nARCHS = {tuple(archs)!r}\n"
    )
    info = site / f"torch-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: torch\nVersion: {version}\n")
    return package
