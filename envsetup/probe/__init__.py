"""Probes: small functions that each learn one fact about the live machine, with evidence.

Every probe returns a value or None and records an `Evidence` (fact, value, source, ms) in a
`Findings`, so `envsetup detect` can say where each fact came from and what it cost. Probes that
read files take a `root` directory so tests can build a fake sysfs/procfs tree; nothing here
imports torch, and the expensive modules (ctypes, subprocess) are imported only by the probes that
need them, so a machine without a GPU pays for neither.
"""

from __future__ import annotations

from envsetup.probe.findings import Findings
from envsetup.probe.host import current_platform

__all__ = ["Findings", "current_platform"]
