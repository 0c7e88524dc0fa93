"""Value readers every format shares (versions, bus ids, UUIDs, MiB, MIG mode), so a driver
version or a placeholder such as "N/A" means the same in each of them.
"""

from __future__ import annotations

import re
from typing import Callable

from envsetup.model.machine import driver_version

_VERSION = re.compile(r"[0-9]+(?:\.[0-9]+)+")  # ASCII: Unicode digits are no version
_BUS_ID = re.compile(r"[0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-9A-Fa-f]")
_UUID = re.compile(r"(?:GPU|MIG)-[0-9A-Fa-f][0-9A-Fa-f-]{7,}(?:/\d+/\d+)?")
_MIB = re.compile(r"(?<!\d)(\d+)\s*MiB\b")
_CAPABILITY = re.compile(r"\d{1,2}\.\d")


def _value(text: str | None) -> str | None:
    """A printed value, or None for the placeholders nvidia-smi prints instead of one
    (N/A, ERR!, Not Found, [Not Supported], [Unknown Error], ...)."""
    if text is None:
        return None
    value = text.strip()
    if not value or value.startswith("[") or value.upper() in _PLACEHOLDERS:
        return None
    return value


_PLACEHOLDERS = frozenset(
    {"N/A", "NA", "ERR!", "NOT FOUND", "NOT SUPPORTED", "UNKNOWN ERROR", "UNKNOWN", "NONE", "-"}
)


def _version(text: str | None) -> str | None:
    """A dotted version number at the start of `text` ("580.159.04"), else None."""
    value = _value(text)
    match = _VERSION.match(value) if value else None
    return match.group(0) if match else None


def _int(text: str | None) -> int | None:
    value = _value(text)
    return int(value) if value is not None and _is_number(value) else None


def _is_number(word: str) -> bool:
    """ASCII digits only: "²".isdigit() is true, but int("²") raises."""
    return word.isascii() and word.isdigit()


def _mib(text: str | None) -> int | None:
    """Memory in MiB from "81559 MiB", "81559MiB" or a bare "81559"."""
    value = _value(text)
    if value is None:
        return None
    match = _MIB.search(value)
    return int(match.group(1)) if match else _int(value)


def _total(cell: str) -> int | None:
    """Total memory from a "used / total" cell ("0MiB /  81559MiB")."""
    return _mib(cell.rpartition("/")[2])


def _uuid(text: str | None) -> str | None:
    match = _UUID.search(text or "")
    return match.group(0) if match else None


def _bus_id(text: str | None) -> str | None:
    match = _BUS_ID.search(text or "")
    return match.group(0) if match else None


def _mig_mode(text: str | None) -> bool | None:
    value = (_value(text) or "").lower()
    return {"enabled": True, "disabled": False}.get(value)


def _field(text: str, labels: tuple[str, ...], read: Callable[[str], str | None]) -> str | None:
    """The first value `read` accepts after any of `labels` followed by a colon, in this
    order of preference ("KMD Version" before the deprecated "Driver Version")."""
    for label in labels:
        value = _version_after(text, label, read)
        if value is not None:
            return value
    return None


def _version_after(
    text: str, label: str, read: Callable[[str], str | None] = _version
) -> str | None:
    """The word printed after the first "`label`:" (any case), if `read` accepts it."""
    words = r"\s+".join(map(re.escape, label.split()))  # a web page may wrap between them
    match = re.search(rf"{words}\s*:\s*(\S+)", text, re.IGNORECASE)
    return read(match.group(1)) if match else None


def _driver(text: str) -> str | None:
    # 610+ print "KMD Version"; older "Driver Version". WSL's "NVIDIA-SMI 555.52.01" is the
    # Linux tool's own number, not the Windows driver, so it is never used. The whole word
    # must be a driver version (machine.driver_version), never a prefix of it.
    return _field(text, ("KMD Version", "DRIVER Version"), driver_version)


def _cuda(text: str) -> str | None:
    return _field(text, ("CUDA UMD Version", "CUDA Version"), _version)
