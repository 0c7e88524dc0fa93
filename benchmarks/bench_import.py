"""What starting envsetup imports: `python -X importtime` of the CLI verbs and the pytest plugin.

Assert-free: it reports the most expensive imports (cumulative µs, as CPython measures them) and
names every module outside the standard library and envsetup, so a heavy dependency (torch,
numpy, a second packaging grammar) creeping into start-up shows up here in one run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

#: Third-party modules envsetup is allowed to import at start-up (its one runtime dependency).
ALLOWED = {"packaging", "tomli"}
#: Failed probes of the standard library, not dependencies: `copy` tries Jython's
#: org.python.core, `platform` (3.12+) tries Windows' _wmi everywhere.
PROBES = {"org", "_wmi"}
HEAVY = {"torch", "numpy", "pytest", "nox", "tox", "pip", "setuptools", "pkg_resources"}


def importtime(code: list[str]) -> list[tuple[int, int, str]]:
    """(self µs, cumulative µs, dotted name) for every module `python -X importtime` reports."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    result = subprocess.run(
        [sys.executable, "-X", "importtime", *code],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    rows = []
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, cumulative, name = (part.strip() for part in line[len("import time:") :].split("|"))
        rows.append((int(own), int(cumulative), name))
    return rows


def _outside(rows: list[tuple[int, int, str]], baseline: set[str]) -> set[str]:
    tops = {name.split(".")[0] for _, _, name in rows} - baseline
    known = {*sys.stdlib_module_names, *PROBES, "envsetup"}
    return {top for top in tops if top not in known}


def run(report: Any) -> None:
    report.section("import cost at start-up (python -X importtime; assert-free)")
    # What any start of this interpreter imports (site hooks, .pth files) is not ours.
    startup = {name.strip().split(".")[0] for _, _, name in importtime(["-c", "pass"])}
    cases = {
        "python -m envsetup detect": ["-m", "envsetup", "detect"],
        "python -m envsetup plan --gpu none": ["-m", "envsetup", "plan", "--gpu", "none"],
    }
    for label, code in cases.items():
        importtime(code)  # warm the bytecode cache
        rows = importtime(code)
        total = sum(own for own, _, _ in rows)
        ours = sum(own for own, _, name in rows if name.strip().startswith("envsetup"))
        report.note(
            f"{label}: {len(rows)} modules, {total / 1000:.1f} ms importing, "
            f"{ours / 1000:.1f} ms of it in envsetup's own modules"
        )
        for own, cumulative, name in sorted(rows, key=lambda row: -row[1])[:8]:
            shown = f"{cumulative / 1000:>7.2f} ms cumulative {own / 1000:>6.2f} ms self"
            report.note(f"    {shown}  {name.strip()}")
        third = _outside(rows, startup)
        heavy = sorted((third & HEAVY) | (third - ALLOWED))
        report.note(
            f"  third-party: {', '.join(sorted(third)) or 'none'}; torch imported: "
            f"{'yes' if 'torch' in third else 'no'}; "
            f"heavy or beyond packaging/tomli: {', '.join(heavy) or 'none'}"
        )
    # The plugin loads inside pytest: count only what it adds to pytest's own imports.
    base = importtime(["-c", "import pytest"])
    rows = importtime(["-c", "import pytest, envsetup.integrations.pytest_plugin"])
    seen = {name.strip() for _, _, name in base}
    added = [row for row in rows if row[2].strip() not in seen]
    cost = sum(own for own, _, _ in added)
    report.note(f"pytest plugin: {len(added)} modules beyond pytest's own, {cost / 1000:.1f} ms")
    for own, _, name in sorted(added, key=lambda row: -row[0])[:5]:
        report.note(f"    {own / 1000:>6.2f} ms self  {name.strip()}")
    third = _outside(added, {n.split(".")[0] for n in seen})
    report.note(
        f"  third-party added by the plugin: {', '.join(sorted(third)) or 'none'}; "
        f"torch imported: {'yes' if 'torch' in third else 'no'}"
    )
