"""How cost grows: planning each matrix cell on its own, and detection with 1, 8 and 16 GPUs.

bench_plan times all cells as one batch; here each cell is timed alone so the spread shows
(an old release, a ROCm variant or a free-threaded Python should cost what any cell costs).
The GPU rows build N-GPU outputs from the real 16-GPU table and the H100 query CSV, then time
the parser, detection from a saved output, and a live detect() against a fake sysfs tree and a
fake nvidia-smi on PATH (tests/support/fakes.py), so per-GPU cost is visible as a ratio.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parent.parent / "tests"
COUNTS = (1, 8, 16)


def matrix_cells() -> list[tuple[str, Any, Any]]:
    """(label, machine, request) per published torch x platform x variant, on its newest
    Python: the cell set both this file and bench_plan time."""
    from envsetup.matrices import load
    from envsetup.model.machine import Machine, Platform
    from envsetup.model.plan import Request

    cells = []
    for release in load().releases:
        for platform, variants in release.variants.items():
            os_name, _, arch = platform.partition("-")
            for variant in variants:
                pythons = [
                    python
                    for python in release.pythons(platform)
                    if release.has_wheel(python, platform, variant)
                ]
                if pythons:
                    machine = Machine(platform=Platform(os_name, arch, pythons[-1]))
                    request = Request(torch=release.torch, backend=variant)
                    cells.append((f"{release.torch} {platform} {variant}", machine, request))
    return cells


def _per_cell(report: Any) -> None:
    from envsetup.matrices import load
    from envsetup.resolve import resolve

    matrices = load()
    cells = matrix_cells()
    per_cell: dict[str, float] = {}
    for label, machine, request in cells:
        resolve(machine, request, matrices)  # warm
        samples = []
        for _ in range(max(3, report.runs // 4)):
            started = time.perf_counter()
            resolve(machine, request, matrices)
            samples.append((time.perf_counter() - started) * 1e6)
        per_cell[label] = statistics.median(samples)
    values = sorted(per_cell.values())
    report.section(f"plan per matrix cell, in-process ({len(cells)} cells, each timed alone)")
    report.note(
        f"µs per cell: median {statistics.median(values):.0f}, "
        f"p90 {values[int(len(values) * 0.9)]:.0f}, max {values[-1]:.0f}, min {values[0]:.0f}"
    )
    for label, micros in sorted(per_cell.items(), key=lambda item: -item[1])[:3]:
        report.note(f"slowest: {label}: {micros:.0f} µs")
    report.ratio("slowest cell / median cell", values[-1], statistics.median(values))


def _smi_outputs(count: int) -> dict[str, str]:
    """nvidia-smi's table and --query-gpu CSV for `count` GPUs, cut from real outputs."""
    from support import fakes

    lines = (fakes.SMI_SAMPLES / "rtx6000d-590-16gpu-synthetic.txt").read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("|   0  "))
    end = first + 4 * 16  # each GPU is three rows and a separator
    table = [*lines[:first], *lines[first : first + 4 * count], *lines[end:]]
    header, row = (fakes.SMI_SAMPLES / "h100-580-query-gpu.csv").read_text().splitlines()[:2]
    rows = [
        row.replace("0, ", f"{index}, ", 1)
        .replace(":06.0", f":{index + 6:02x}.0")
        .replace("eea31", f"ee{index:03x}")  # one UUID per GPU
        for index in range(count)
    ]
    return {"": "\n".join(table) + "\n", "--query-gpu": "\n".join([header, *rows]) + "\n"}


def _gpus(report: Any) -> None:
    sys.path.insert(0, str(TESTS))
    from support import fakes

    from envsetup.detect import detect, machine_from_nvidia_smi
    from envsetup.detect.smi import parse

    report.section("detect with 1, 8 and 16 GPUs")
    timings: dict[str, dict[int, float]] = {"parse": {}, "saved": {}, "live": {}}
    with tempfile.TemporaryDirectory(prefix="envsetup-bench-gpus-") as folder:
        for count in COUNTS:
            outputs = _smi_outputs(count)
            found = len(parse(outputs[""]).gpus), len(parse(outputs["--query-gpu"]).gpus)
            assert found == (count, count), f"built {found} GPUs, meant {count}"
            root = Path(folder) / str(count)
            fakes.nvidia_driver(root, "590.44.01", nodes=count)
            fakes.fake_tool(root / "bin", "nvidia-smi", outputs=outputs)
            environ = fakes.environ_with_path(root / "bin")
            timings["parse"][count] = report.call(
                f"parse(nvidia-smi table), {count} GPUs", lambda t=outputs[""]: parse(t)
            )
            timings["saved"][count] = report.call(
                f"machine_from_nvidia_smi(table), {count} GPUs",
                lambda t=outputs[""]: machine_from_nvidia_smi(t),
            )
            timings["live"][count] = report.call(
                f"detect(): sysfs + fake nvidia-smi on PATH, {count} GPUs",
                lambda r=root, e=environ: detect(root=r, environ=e),
                runs=max(3, report.runs // 3),
            )
    for name, values in timings.items():
        report.ratio(f"{name}: 16 GPUs / 1 GPU", values[16], values[1])


def run(report: Any) -> None:
    _per_cell(report)
    _gpus(report)
