"""A verify report as text: what `verify`, `install` and `venv` print after checking an
environment, so the three verbs show one report the same way."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from envsetup.verify import VerifyReport

__all__ = ["human"]


def human(report: VerifyReport) -> str:
    """One line per check, the fix under each failure, then the bench figures and a verdict."""
    version = f" (Python {report.python_version})" if report.python_version else ""
    lines = [f"verify {report.python}{version}"]
    width = max(len(check.name) for check in report.checks)
    for check in report.checks:
        lines.append(f"  {'ok  ' if check.ok else 'FAIL'}  {check.name:<{width}}  {check.detail}")
        if check.fix:
            lines.append(f"        {'':<{width}}  fix: {check.fix}")
    if report.bench:
        lines += ["", *bench_lines(report.bench)]
    failed = len(report.failures)
    total = len(report.checks)
    lines.append("")
    lines.append(
        f"all {total} checks passed" if not failed else f"{failed} of {total} checks failed"
    )
    return "\n".join(lines)


def bench_lines(bench: dict[str, Any]) -> list[str]:
    if "error" in bench:
        return [f"bench: could not run: {bench['error']}"]
    cpu = bench["cpu"]
    lines = [
        f"bench: CPU {cpu['matmul']} matmul {cpu['gflops']} GFLOP/s ({cpu['threads']} threads)"
    ]
    for device in bench.get("devices", []):
        lines += [
            f"bench: {device['device']} host->device {device['h2d_pageable_gbs']} GB/s pageable, "
            f"{device['h2d_pinned_gbs']} GB/s pinned (x{device['pinned_vs_pageable_h2d']})",
            f"bench: {device['device']} device->host {device['d2h_pageable_gbs']} GB/s pageable, "
            f"{device['d2h_pinned_gbs']} GB/s pinned",
            f"bench: {device['device']} {device['matmul']} matmul {device['tflops']} TFLOP/s "
            f"(x{device['device_vs_cpu_matmul']} the CPU)",
        ]
    if not bench.get("devices"):
        lines.append("bench: no GPU usable; CPU figures only")
    return lines
