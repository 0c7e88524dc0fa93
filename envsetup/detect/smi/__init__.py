"""Read whatever `nvidia-smi` printed — any format, any driver generation, pasted or not.

`parse(text)` recognises the format by itself (default table, `-q`, `-q -x`, `--query-gpu` CSV,
`-L`, `--version`, or a failure message) and returns a `SmiReport`. It is pure (text in, value
out) and never raises: support pastes arrive mangled, and a traceback helps nobody. What cannot
be read stays None; a text with nothing to read becomes an `unparseable` problem.

The CUDA version is reported only as printed: deriving it from the driver version is the
detector's job, through the table in `matrices/`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

from envsetup.detect.smi.clean import _clean_lines
from envsetup.detect.smi.csv_query import _read_csv
from envsetup.detect.smi.failures import _failures
from envsetup.detect.smi.listing import _read_list, _read_version
from envsetup.detect.smi.merge import _merge, _richness, fill_gaps
from envsetup.detect.smi.query import _read_query_log
from envsetup.detect.smi.query_xml import _read_xml
from envsetup.detect.smi.report import MAX_CHARS, SmiReport, _unparseable
from envsetup.detect.smi.table import _read_table
from envsetup.detect.smi.values import _version_after
from envsetup.model.machine import Problem

__all__ = ["SmiReport", "fill_gaps", "parse"]


def parse(text: str) -> SmiReport:
    """Parse any `nvidia-smi` output (or a paste of one); never raises."""
    try:
        return _parse(str(text)[:MAX_CHARS])
    except Exception as exc:  # last line of defence: a report, never a traceback
        return SmiReport(
            "unknown",
            problems=(
                Problem(
                    "unparseable",
                    f"internal parser error ({type(exc).__name__}) on this text",
                    "Please report this as an envsetup bug and attach the text.",
                ),
            ),
        )


def _parse(text: str) -> SmiReport:
    lines = _clean_lines(text)
    clean = "\n".join(lines)
    failures = _failures(clean)
    reports = [report for report in (read(clean, lines) for read in _READERS) if report]
    found = [report for report in reports if report.driver_version or report.gpus]
    if found:
        # A paste often holds several outputs (`-L` then `--query-gpu`): the richest one
        # leads, the others fill in what it lacks.
        primary = max(found, key=lambda report: (bool(report.gpus), _richness(report)))
        report = _merge(primary, [other for other in found if other is not primary])
        return replace(report, problems=report.problems + failures)
    recognised = reports[0] if reports else None
    if recognised is not None and (recognised.problems or not failures):
        # A known shape with nothing in it: say why, unless a failure text already does.
        problems = recognised.problems or (
            _unparseable(_NOTHING_FOUND.format(fmt=recognised.format)),
        )
        return replace(recognised, problems=problems + failures)
    nvml = _version_after(clean, "NVML library version")
    if failures:
        return SmiReport("error", problems=failures, nvml_version=nvml)
    what = "an empty text" if not clean.strip() else f"{len(lines)} lines in no known format"
    return SmiReport("unknown", problems=(_unparseable(_UNKNOWN.format(what=what)),))


_READERS: tuple[Callable[[str, list[str]], SmiReport | None], ...] = (
    _read_xml,
    _read_version,
    _read_query_log,
    _read_table,
    _read_list,
    _read_csv,
)


_NOTHING_FOUND = "recognised nvidia-smi {fmt} output but found neither a driver version nor a GPU"
_UNKNOWN = "this is not nvidia-smi output that envsetup can read ({what})"
