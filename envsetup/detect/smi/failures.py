"""nvidia-smi's failure messages (no driver, version mismatch, ...) classified as Problems with
what to do, found anywhere in a text.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING

from envsetup.detect.smi.values import _version_after
from envsetup.model.machine import Problem

if TYPE_CHECKING:
    from envsetup.model.machine import ProblemKind

_NO_DRIVER_HINT = (
    "Install the NVIDIA driver (or load its kernel module), reboot if it was just installed; "
    "in a container, start it with GPU access (docker run --gpus all)."
)

#: (kind, pattern, message, hint); the first match of each kind is reported.
_FAILURES: tuple[tuple[ProblemKind, str, str, str], ...] = (
    (
        "version_mismatch",
        r"Driver/library version mismatch",
        "the NVIDIA kernel driver and its user-space library (NVML) have different versions; "
        "the driver was updated without a reboot",
        "Reboot, or unload and reload the nvidia kernel modules, so both are one version.",
    ),
    (
        "no_driver",
        # any apostrophe a paste carries (typographic, backtick, acute), wrapped anywhere
        r"couldn['\u2018\u2019`\u00b4]?t\s+communicate\s+with\s+the\s+NVIDIA\s+driver"
        r"|NVML: Driver Not Loaded|couldn['\u2018\u2019`\u00b4]?t\s+find\s+libnvidia-ml",
        "nvidia-smi could not talk to the NVIDIA driver: none is loaded",
        _NO_DRIVER_HINT,
    ),
    (
        "permission_denied",
        r"Insufficient Permissions|Permission denied|NVML: No permission",
        "nvidia-smi was not allowed to open the GPU device files",
        "Run as a user with access to /dev/nvidia* (groups video/render), or give the "
        "container the devices.",
    ),
    (
        "no_driver",
        r"Failed to initialize NVML: (?!Driver/library|Insufficient)\w.*",
        "NVML, the driver's management library, failed to start",
        _NO_DRIVER_HINT,
    ),
    (
        "no_devices",
        r"No devices were found",
        "the NVIDIA driver is loaded but finds no GPU",
        "Check that the GPU is visible here (lspci; in a container --gpus all or "
        "NVIDIA_VISIBLE_DEVICES) and that this driver supports it.",
    ),
    (
        "no_devices",
        r"Unable to determine the device handle|GPU is lost",
        "a GPU stopped answering the driver (it fell off the bus) and cannot be used",
        "Reboot or reset the GPU; if it recurs, check its power, cooling and seating.",
    ),
    (
        "unparseable",
        r"Field \"[\w.]+\" is not a valid field to query",
        "this nvidia-smi does not know a field of the query; older drivers lack newer "
        "fields such as compute_cap",
        "Query without that field, or paste the plain `nvidia-smi` table instead.",
    ),
    (
        "not_found",
        r"nvidia-smi[\"']?:?\s*(?:command )?not found|executable file not found"
        r"|nvidia-smi[^\s:]{0,20}: No such file or directory"
        r"|No such file or directory: '?nvidia-smi"
        r"|not recognized as an internal or external command|is not recognized as the name of"
        # Windows in Chinese, Portuguese, German, French, Spanish
        r"|不是内部或外部命令|reconhecido como um comando interno|nicht als interner oder externer"
        r"|pas reconnu en tant que commande|no se reconoce como un comando",
        "the nvidia-smi command is not installed or not on PATH",
        "Install the NVIDIA driver (it ships nvidia-smi) or put its directory on PATH; on "
        "Windows it is in C:\\Windows\\System32.",
    ),
)


def _failures(text: str) -> tuple[Problem, ...]:
    """Classified failure messages found anywhere in the text."""
    problems: dict[str, Problem] = {}
    for kind, pattern, message, hint in _FAILURES:
        match = re.search(pattern, text, re.IGNORECASE)
        if match and kind not in problems:
            found = _line_at(text, match.start())
            problems[kind] = Problem(kind, f"{message} (nvidia-smi said: {found!r})", hint)
    library = _version_after(text, "NVML library version")
    mismatch = problems.get("version_mismatch")
    if library and mismatch:
        problems["version_mismatch"] = replace(
            mismatch,
            message=f"{mismatch.message}; {library} is the library's version, not the running "
            "driver's",
        )
    return tuple(problems.values())


def _line_at(text: str, position: int) -> str:
    start = text.rfind("\n", 0, position) + 1
    end = text.find("\n", position)
    return text[start : end if end >= 0 else len(text)].strip()[:200]
