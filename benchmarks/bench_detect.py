"""`envsetup detect --json` against a bare interpreter start and against `nvidia-smi`.

Targets from issue 1/6: at most 1.5x `python -c pass` on a machine without a GPU, and faster than
`nvidia-smi` alone where one exists. The stdlib-floor row shows what any CLI built on argparse,
json and dataclasses (machine.py) pays before running a line of its own; the rest is ours.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any


def run(report: Any) -> None:
    from envsetup.detect import detect
    from envsetup.detect.nvidia import QUERY_ARGS

    python = sys.executable
    script = Path(python).parent / ("envsetup.exe" if sys.platform == "win32" else "envsetup")
    commands = {
        "python -c pass": [python, "-c", "pass"],
        "python -c 'import argparse, json, dataclasses' (stdlib floor)": [
            python,
            "-c",
            "import argparse, json, dataclasses",
        ],
        "python -m envsetup detect --json": [python, "-m", "envsetup", "detect", "--json"],
    }
    if script.exists():
        commands["envsetup detect --json (console script)"] = [str(script), "detect", "--json"]
    smi = shutil.which("nvidia-smi")
    if smi is not None:
        commands["nvidia-smi"] = [smi]
        commands["nvidia-smi --query-gpu=...,compute_cap,... --format=csv"] = [smi, *QUERY_ARGS]
    report.section("envsetup detect (whole process, sampled round-robin)")
    timings = dict(zip(commands, report.race(commands)))
    report.call("detect() in-process", detect)
    _fake_nvml(report, detect)
    bare = timings["python -c pass"]
    module = timings["python -m envsetup detect --json"]
    ours = timings.get("envsetup detect --json (console script)", module)
    report.ratio("envsetup detect --json / python -c pass", ours, bare, "<= 1.5 without a GPU")
    report.ratio("python -m envsetup detect --json / python -c pass", module, bare)
    floor = timings["python -c 'import argparse, json, dataclasses' (stdlib floor)"]
    report.ratio("stdlib floor / python -c pass", floor, bare)
    if smi is None:
        report.note("no nvidia-smi on PATH: the nvidia-smi comparison needs a GPU machine")
    else:
        report.ratio("envsetup detect --json / nvidia-smi", ours, timings["nvidia-smi"], "< 1")
        query = timings["nvidia-smi --query-gpu=...,compute_cap,... --format=csv"]
        report.ratio("envsetup detect --json / nvidia-smi --query-gpu", ours, query)
    module_argv = commands["python -m envsetup detect --json"]
    _light_the_torch(report, commands.get("envsetup detect --json (console script)", module_argv))


def _fake_nvml(report: Any, detect: Any) -> None:
    """What querying NVML in a child process costs: detect() on a fake driver tree whose
    libnvidia-ml is compiled from tests/support/fake_nvml.c (it answers at once, so the row is the
    child's start-up), next to the bare `python -I -S -c pass` the child is built on."""
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from support import fakes

    if fakes.compiler() is None or not sys.platform.startswith("linux"):
        report.note("fake NVML: needs a C compiler on Linux")
        return
    with tempfile.TemporaryDirectory(prefix="envsetup-bench-nvml-") as folder:
        root = Path(folder)
        fakes.nvidia_driver(root)
        fakes.build_fake_nvml(root / "usr/lib64/libnvidia-ml.so.1")
        bare = report.race({"python -I -S -c pass": [sys.executable, "-I", "-S", "-c", "pass"]})
        nvml = report.call(
            "detect() on a fake driver tree, fake NVML in a child",
            lambda: detect(root=root, environ={}),
        )
        report.ratio("detect() with the NVML child / python -I -S -c pass", nvml, bare[0])


#: light-the-torch's own detection, as `ltt install` runs it before choosing an index.
LTT_DETECT = "import light_the_torch._cb as cb; cb.detect_compatible_computation_backends()"


def _light_the_torch(report: Any, ours: list[str]) -> None:
    """The same machine, the same run: light-the-torch's detection in a throwaway venv."""
    import subprocess
    import tempfile

    report.section("envsetup detect vs light-the-torch detection (round-robin)")
    if sys.version_info < (3, 10):
        report.note("light-the-torch: not available (it needs Python >= 3.10)")
        return
    base = getattr(sys, "_base_executable", sys.executable)
    with tempfile.TemporaryDirectory(prefix="envsetup-bench-ltt-") as folder:
        python = str(
            Path(folder) / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
        )
        steps = [
            [base, "-m", "venv", folder],
            [python, "-m", "pip", "install", "-q", "light-the-torch", "pip<26.1"],
            [python, "-c", LTT_DETECT],
        ]
        for step in steps:
            try:
                done = subprocess.run(step, capture_output=True, timeout=300, check=False)
                failed = done.returncode != 0
            except (OSError, subprocess.TimeoutExpired):
                failed = True
            if failed:
                report.note(f"light-the-torch: not available (`{' '.join(step[1:4])}` failed)")
                return
        version = subprocess.run(
            [python, "-c", "import light_the_torch; print(light_the_torch.__version__)"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        bare, ltt, envsetup = report.race(
            {
                "python -c pass (light-the-torch's venv)": [python, "-c", "pass"],
                f"light-the-torch {version} detect_compatible_computation_backends()": [
                    python,
                    "-c",
                    LTT_DETECT,
                ],
                "envsetup detect --json": ours,
            }
        )
    report.ratio("envsetup detect --json / light-the-torch detection", envsetup, ltt)
    report.ratio("light-the-torch detection / python -c pass", ltt, bare)
