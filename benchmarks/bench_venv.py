"""`envsetup venv` end to end against the offline fake PyTorch index on 127.0.0.1: pip vs uv.

Whole process: plan, create the environment, install torch+torchvision (small fake wheels, so
this measures the installers' own overhead, not download bandwidth), verify in the new
interpreter. Sampled round-robin so load drift on a shared machine hits both installers alike.
The index and isolated pip/uv settings are the tests' own (tests/support/fake_index.py).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parent.parent / "tests"
RUNS = 3  # a pip venv costs seconds: fewer samples than the start-up rows


def run(report: Any) -> None:
    sys.path.insert(0, str(TESTS))
    from support.fake_index import FakeBuild, isolated_env, serve_fake_index

    runs = min(report.runs, RUNS)
    report.section(f"envsetup venv, fake index on 127.0.0.1 (whole process, {runs} runs)")
    samples: dict[str, list[float]] = {"--installer pip": [], "--installer uv": []}
    env = isolated_env()
    with (
        tempfile.TemporaryDirectory(prefix="envsetup-bench-venv-") as folder,
        serve_fake_index([FakeBuild("2.5.1", "cpu")]) as index,
    ):
        for attempt in range(runs):
            for label, values in samples.items():
                target = Path(folder) / f"env-{attempt}-{label[-3:]}"
                argv = [sys.executable, "-m", "envsetup", "venv", str(target), *label.split()]
                argv += ["--torch", "2.5.1", "--with", "torchvision", "--gpu", "none"]
                argv += ["--index-url-base", index.url, "--allow-insecure-index"]
                started = time.perf_counter()
                result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
                values.append((time.perf_counter() - started) * 1000)
                if result.returncode != 0:
                    report.note(f"{label} failed: {result.stderr.strip().splitlines()[-1:]}")
                    return
                shutil.rmtree(target)
    pip, uv = report.rows({f"envsetup venv {label}": values for label, values in samples.items()})
    report.ratio("envsetup venv: pip / uv", pip, uv)
