"""The notebook probes write into: evidence in the order it was learnt, warnings and problems."""

from __future__ import annotations

import time
from collections.abc import Sequence

from envsetup.model.machine import Evidence, Problem

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from envsetup.model.machine import ProblemKind


def now() -> float:
    """A start mark for `Findings.record` (monotonic, sub-millisecond)."""
    return time.perf_counter()


class Findings:
    """What the probes learnt so far; `detect` turns it into a `Machine`."""

    def __init__(self) -> None:
        self.evidence: list[Evidence] = []
        self.warnings: list[str] = []
        self.problems: list[Problem] = []

    def record(self, fact: str, value: object, source: str, started: float) -> None:
        """Note one fact (None when the source had nothing) and the time since `started`."""
        ms = round((time.perf_counter() - started) * 1000, 3)
        kept = value if value is None or isinstance(value, (str, int, float, bool)) else str(value)
        self.evidence.append(Evidence(fact=fact, value=kept, source=source, ms=ms))

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def problem(self, kind: ProblemKind, message: str, hint: str | None = None) -> None:
        found = Problem(kind=kind, message=message, hint=hint)
        if found not in self.problems:
            self.problems.append(found)


def source_of(evidence: Sequence[Evidence], fact: str, value: object) -> str | None:
    """The first source that reported `value` for `fact` (what the summary shows)."""
    text = None if value is None else str(value)
    for item in evidence:
        if item.fact == fact and (None if item.value is None else str(item.value)) == text:
            return item.source
    return None
