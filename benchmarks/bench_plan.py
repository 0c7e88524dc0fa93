"""`envsetup plan --json` against a bare interpreter start, and the resolver per matrix cell.

Target from issue 2/6: `plan` stays close to interpreter start-up (at most 2.0x `python -c pass`).
Planning a described machine (flags) isolates the resolver and matrices load from detection;
the live row adds detection. The per-cell row plans every (release, platform, variant) the
matrices know, forced with --backend, so a slow rule shows up as a per-cell cost.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

DESCRIBED = ["--driver", "535.104.05", "--cuda", "12.2", "--compute-cap", "8.6,9.0"]
TARGET = ["--platform", "linux-x86_64", "--python", "3.11"]


def run(report: Any) -> None:
    python = sys.executable
    script = Path(python).parent / ("envsetup.exe" if sys.platform == "win32" else "envsetup")
    command = [str(script)] if script.exists() else [python, "-m", "envsetup"]
    report.section("envsetup plan (whole process)")
    bare = report.command("python -c pass", [python, "-c", "pass"])
    described = report.command(
        "envsetup plan --json (machine from flags)",
        [*command, "plan", "--json", *DESCRIBED, *TARGET],
    )
    live = report.command("envsetup plan --json (live detection)", [*command, "plan", "--json"])
    report.ratio("envsetup plan --json (flags) / python -c pass", described, bare, "<= 2.0")
    report.ratio("envsetup plan --json (live) / python -c pass", live, bare, "<= 2.0")

    from bench_scaling import matrix_cells  # benchmarks/ is sys.path[0] under run.py

    from envsetup.matrices import load
    from envsetup.model.machine import Gpu, Machine, Platform
    from envsetup.model.plan import Request
    from envsetup.resolve import resolve

    matrices = load()
    cells = [(machine, request) for _, machine, request in matrix_cells()]
    report.section(f"resolver, in-process ({len(cells)} matrix cells)")

    def every_cell() -> None:
        for machine, request in cells:
            resolve(machine, request, matrices)

    total = report.call(f"resolve() over all {len(cells)} cells", every_cell, runs=5)
    report.note(f"{total / len(cells) * 1000:.1f} µs per cell")
    gpu_box = Machine(
        platform=Platform("linux", "x86_64", "3.11"),
        driver_version="535.104.05",
        cuda_version="12.2",
        gpus=(Gpu(index=0, compute_capability="8.6"), Gpu(index=1, compute_capability="9.0")),
    )
    report.call(
        "resolve() unpinned, two GPUs (searches every release)",
        lambda: resolve(gpu_box, Request(), matrices),
    )
