"""`envsetup detect --json` against a bare interpreter start and against `nvidia-smi`.

Targets from issue 1/6: at most 1.5x `python -c pass` on a machine without a GPU, and faster than
`nvidia-smi` alone where one exists. The stdlib-floor row shows what any argparse+json+dataclasses
CLI pays before running a line of its own, so the rest is ours.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any


def run(report: Any) -> None:
    python = sys.executable
    script = Path(python).parent / ("envsetup.exe" if sys.platform == "win32" else "envsetup")
    report.section("envsetup detect (whole process)")
    bare = report.command("python -c pass", [python, "-c", "pass"])
    floor = report.command(
        "python -c 'import argparse, json, dataclasses' (stdlib floor)",
        [python, "-c", "import argparse, json, dataclasses"],
    )
    module = report.command(
        "python -m envsetup detect --json", [python, "-m", "envsetup", "detect", "--json"]
    )
    detect = module
    if script.exists():
        detect = report.command(
            "envsetup detect --json (console script)", [str(script), "detect", "--json"]
        )
    from envsetup.detect import detect as detect_in_process

    report.call("detect() in-process", detect_in_process)
    report.ratio("envsetup detect --json / python -c pass", detect, bare, "<= 1.5 without a GPU")
    report.ratio("python -m envsetup detect --json / python -c pass", module, bare)
    report.ratio("stdlib floor / python -c pass", floor, bare)
    smi = shutil.which("nvidia-smi")
    if smi is None:
        report.note("no nvidia-smi on PATH: the nvidia-smi comparison needs a GPU machine")
        return
    from envsetup.probe.nvidia import QUERY_ARGS

    plain = report.command("nvidia-smi", [smi])
    query = report.command(
        "nvidia-smi --query-gpu=...,compute_cap,... --format=csv",
        [smi, *QUERY_ARGS],
    )
    report.ratio("envsetup detect --json / nvidia-smi", detect, plain, "< 1")
    report.ratio("envsetup detect --json / nvidia-smi --query-gpu", detect, query)
