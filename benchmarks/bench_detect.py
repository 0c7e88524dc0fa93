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
    from envsetup.probe.nvidia import QUERY_ARGS

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
    bare = timings["python -c pass"]
    module = timings["python -m envsetup detect --json"]
    ours = timings.get("envsetup detect --json (console script)", module)
    report.ratio("envsetup detect --json / python -c pass", ours, bare, "<= 1.5 without a GPU")
    report.ratio("python -m envsetup detect --json / python -c pass", module, bare)
    floor = timings["python -c 'import argparse, json, dataclasses' (stdlib floor)"]
    report.ratio("stdlib floor / python -c pass", floor, bare)
    if smi is None:
        report.note("no nvidia-smi on PATH: the nvidia-smi comparison needs a GPU machine")
        return
    report.ratio("envsetup detect --json / nvidia-smi", ours, timings["nvidia-smi"], "< 1")
    query = timings["nvidia-smi --query-gpu=...,compute_cap,... --format=csv"]
    report.ratio("envsetup detect --json / nvidia-smi --query-gpu", ours, query)
