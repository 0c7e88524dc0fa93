"""The operating system a pasted output comes from, when the text shows it: a support paste
is planned for the machine it describes, not for the one reading it.
"""

from __future__ import annotations

import re

from envsetup.detect.smi.report import MAX_CHARS

#: (os, wsl, pattern, what it is), first match wins: WSL before Windows, since WSL runs the
#: Windows driver and its paste may show Windows paths too.
_PLATFORM_MARKERS: tuple[tuple[str, bool, str, str], ...] = (
    ("linux", True, r"/usr/lib/wsl/|microsoft-standard-WSL|\bWSL2?\b", "a WSL marker"),
    ("windows", False, r"\b(?:WDDM|TCC|MCDM)\b", "a Windows driver model"),
    ("windows", False, r"[A-Za-z]:\\(?:Windows|Program Files)\\|nvidia-smi\.exe", "a Windows path"),
    ("windows", False, r"is not recognized as an internal or external command", "cmd.exe's error"),
    ("freebsd", False, r"\bFreeBSD\b", "FreeBSD named"),
)


def pasted_os(text: str) -> tuple[str, bool, str] | None:
    """(os, wsl, why) of the machine a pasted output comes from, when the text shows it: a
    support paste is planned for the machine it describes, not for the one reading it."""
    text = str(text)[:MAX_CHARS]
    for os_name, wsl, pattern, what in _PLATFORM_MARKERS:
        match = re.search(pattern, text)
        if match is None:
            continue
        why = f"{what}: {match.group(0)!r}"
        if os_name == "windows" and _POSIX_PROMPT.search(text):
            # WSL's nvidia-smi reports the Windows driver's model, but from a Linux shell.
            return "linux", True, f"{why} under a POSIX shell prompt (WSL)"
        return os_name, wsl, why
    return None


#: "$ nvidia-smi", "me@box:~$ nvidia-smi", "root@box:/# nvidia-smi"; a bare "# nvidia-smi" is a
#: comment (scripts, MATLAB, PowerShell), not a prompt.
_POSIX_PROMPT = re.compile(
    r"(?m)^(?:[^\s<|]*@[^\s<|]*[^\n<|]*[$#]|[^\n<|#$]*\$)[ \t]*(?:sudo[ \t]+)?nvidia-smi\b(?!\.exe)"
)
