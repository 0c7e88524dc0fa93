"""Pastes arrive wrapped in prompts, quotes, fences, colours and box-drawing marks: strip them
so every reader sees the plain lines nvidia-smi printed.
"""

from __future__ import annotations

import html
import re

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_QUOTE = re.compile(r"^\s*(?:>\s?)+")
_FENCE = re.compile(r"^\s*(?:```|~~~)")
_PREFIXES = (
    # ISO timestamps of log lines and CI runners: 2024-05-01T10:00:00.123Z, 2024-05-01 10:00:00,5
    re.compile(
        r"^\s*\[?\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?\]?"
    ),
    # [stdout], [INFO], [node-3] ...; a table line never starts with "["
    re.compile(r"^\s*\[[^\]\n|]{1,40}\]"),
    re.compile(r"^\s*(?:stdout|stderr|out|err)\s*:", re.IGNORECASE),
    # docker compose: "gpu-check-1  | | NVIDIA-SMI ..." (only before a table character)
    re.compile(r"^\s*[\w.-]+\s+\|\s?(?=\s*[|+])"),
)
# A shell prompt line that runs nvidia-smi: "$ nvidia-smi", "user@host:~# nvidia-smi -q",
# "PS C:\> nvidia-smi.exe", "C:\Users\me>nvidia-smi". XML lines ("<name>nvidia-smi") are not.
# Path segments exclude prompt characters so that a line of "$$$$..." cannot backtrack.
_PROMPT = re.compile(
    r"^[^<|]*[$#%>][ \t]*(?:sudo[ \t]+)?(?:[^\s/\\$#%>]*[/\\])*nvidia-smi(?:\.exe)?\b", re.I
)
_BOX = str.maketrans({"│": "|", "┃": "|", "─": "-", "━": "-", "═": "=", "\xa0": " ", "\t": "    "})


def _clean_lines(text: str) -> list[str]:
    """Strip what a paste adds: quote marks, fences, prompts, log prefixes, colour codes."""
    if "&gt;" in text or "&nbsp;" in text:  # copied from a web page's HTML source
        text = html.unescape(text)
    lines = []
    for raw in re.split(r"\r\n|\r|\n", _ANSI.sub("", text).translate(_BOX)):
        line = _QUOTE.sub("", raw)
        for _ in range(3):  # prefixes stack: "[2024-01-01 10:00] [stdout] ..."
            before = line
            for prefix in _PREFIXES:
                line = prefix.sub("", line, count=1)
            if line == before:
                break
        if _FENCE.match(line) or ("nvidia-smi" in line.lower() and _PROMPT.match(line)):
            continue
        lines.append(line.rstrip())
    return _uncomment(lines)


_COMMENT = re.compile(r"^\s*(%|#|//|;|--)")


def _uncomment(lines: list[str]) -> list[str]:
    """Output pasted as comments of a script ("% Driver Version : ...", "# GPU 0: ..."):
    when most lines carry the same comment marker, drop it (and one space after it)."""
    markers = [m.group(1) for m in map(_COMMENT.match, lines) if m]
    filled = sum(1 for line in lines if line.strip())
    if not markers:
        return lines
    marker = max(set(markers), key=markers.count)
    if markers.count(marker) < max(3, 0.6 * filled):
        return lines
    strip = re.compile(rf"^\s*{re.escape(marker)} ?")
    return [strip.sub("", line, count=1) for line in lines]
