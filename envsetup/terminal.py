"""Text for a terminal: what a GPU, a driver tool or an environment said is shown, never obeyed.

GPU names come from nvidia-smi, NVML or a user's paste, and verify relays what another Python
printed; any of them can hold escape sequences that retitle the window (`ESC ] 0 ; … BEL`),
clear the screen (`ESC [ 2 J`) or move the cursor over earlier lines. Every human printer
passes its text through `printable` as it prints; JSON output escapes them by itself.
"""

from __future__ import annotations

import re

#: C0 controls but tab and newline, DEL, C1 controls (U+009B is a one-character CSI), and the
#: bidirectional overrides that reorder what a line appears to say.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """`text` with each control character written as a visible escape (ESC as `\\x1b`)."""
    return _CONTROL.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
