"""`nvidia-smi --query-gpu=... --format=csv`, with or without its header (columns are then
guessed from the values).
"""

from __future__ import annotations

import collections
import csv
import itertools
import re
from typing import Callable

from envsetup.detect.smi.merge import _Twins
from envsetup.detect.smi.report import SmiReport
from envsetup.detect.smi.values import (
    _BUS_ID,
    _CAPABILITY,
    _UUID,
    _bus_id,
    _int,
    _mib,
    _mig_mode,
    _uuid,
    _value,
)
from envsetup.model.machine import Gpu, driver_version

_CSV_COLUMNS = {
    "index": "index",
    "name": "name",
    "gpu_name": "name",
    "driver_version": "driver",
    "kmd_version": "driver",
    "memory.total": "memory",
    "compute_cap": "capability",
    "uuid": "uuid",
    "gpu_uuid": "uuid",
    "pci.bus_id": "bus",
    "gpu_bus_id": "bus",
    "mig.mode.current": "mig",
}


def _read_csv(text: str, lines: list[str]) -> SmiReport | None:
    """`--query-gpu=... --format=csv[,noheader][,nounits]` in any column order. With a header
    the columns are known and the rows are the block below it; without one, the rows are the
    lines of the most common width and each column is guessed from its values."""
    rows = list(csv.reader(_csv_lines(lines), skipinitialspace=True))
    header_at = next((i for i, row in enumerate(rows) if _is_csv_header(row)), None)
    if header_at is not None:
        columns = [_CSV_COLUMNS.get(_csv_name(cell)) for cell in rows[header_at]]
        block = itertools.takewhile(lambda row: len(row) == len(columns), rows[header_at + 1 :])
        rows = list(block)
    else:
        widths = collections.Counter(len(row) for row in rows if row).most_common(1)
        rows = [row for row in rows if widths and len(row) == widths[0][0]]
        columns = _guess_columns(rows) if rows else []
        # Names and indexes alone look like any comma-separated prose: not enough to go on.
        if not set(columns) & {"uuid", "bus", "driver", "capability", "memory"}:
            return None
    if not rows:
        return None
    records = [dict(zip(columns, (cell.strip() for cell in row))) for row in rows]
    drivers = [driver_version(r.get("driver")) for r in records]
    gpus: list[Gpu] = []
    seen = _Twins((), by_index=False)
    for record in records:
        gpu = _csv_gpu(len(gpus), record)
        # --query-compute-apps (one row per process) names a GPU once per process.
        if seen.of(gpu) is None:
            gpus.append(gpu)
            seen.add(gpu)
    return SmiReport(
        "query", driver_version=next((d for d in drivers if d), None), gpus=tuple(gpus)
    )


_FIELD = re.compile(r"[a-z][a-z0-9_.]*")  # a --query-gpu field name: "memory.total"


def _csv_lines(lines: list[str]) -> list[str]:
    """Lines as the csv module should see them: table rows, the query's own command line and
    overlong lines become blank (a block boundary); NUL becomes U+FFFD (Python < 3.11's csv
    rejects it, and dropping it would make "550\\0.54.14" a driver version)."""
    return [
        ""
        if "|" in line or "--query-gpu" in line or len(line) >= _CSV_LINE_LIMIT
        else line.replace("\0", "\ufffd")
        for line in lines
    ]


#: A header naming every --query-gpu field is about 6,000 characters; the csv module's own
#: field limit is 131,072.
_CSV_LINE_LIMIT = 20_000


def _is_csv_header(row: list[str]) -> bool:
    names = [_csv_name(cell) for cell in row]
    return all(_FIELD.fullmatch(name) for name in names) and bool(set(names) & set(_CSV_COLUMNS))


def _csv_name(cell: str) -> str:
    """ "memory.total [MiB]" -> "memory.total"."""
    return cell.partition("[")[0].strip().lower()


def _csv_gpu(position: int, record: dict[str | None, str]) -> Gpu:
    capability = _value(record.get("capability"))
    index = _int(record.get("index"))
    return Gpu(
        index=position if index is None else index,
        name=_value(record.get("name")),
        memory_mib=_mib(record.get("memory")),
        compute_capability=capability if capability and _CAPABILITY.fullmatch(capability) else None,
        uuid=_uuid(record.get("uuid")),
        bus_id=_bus_id(record.get("bus")),
        mig_enabled=_mig_mode(record.get("mig")),
    )


def _guess_columns(rows: list[list[str]]) -> list[str | None]:
    """Name the columns of a header-less CSV from what every row holds there. Only values with
    a shape of their own are named: UUIDs, bus ids, driver versions (NNN.NN), capabilities
    (X.Y), "N MiB" (total memory), a 0..n-1 index, and the first text column as the name.
    A shape found in two columns names neither: power limits ("250.00") look like driver
    versions, and memory used, free and total look alike. Bare numbers (nounits) stay
    unknown for the same reason."""
    columns = [
        _guess_column([row[col].strip() for row in rows], col) for col in range(len(rows[0]))
    ]
    counts = collections.Counter(columns)
    first_name = columns.index("name") if "name" in columns else -1
    return [
        c if c is None or counts[c] == 1 or i == first_name else None for i, c in enumerate(columns)
    ]


def _guess_column(values: list[str], col: int) -> str | None:
    shapes: tuple[tuple[str, Callable[[str], bool]], ...] = (
        ("uuid", lambda v: _UUID.fullmatch(v) is not None),
        ("bus", lambda v: _BUS_ID.fullmatch(v) is not None),
        ("driver", lambda v: driver_version(v) is not None and "." in v),
        ("capability", lambda v: _CAPABILITY.fullmatch(v) is not None),
        ("memory", lambda v: re.fullmatch(r"\d+ MiB", v) is not None),
        ("mig", lambda v: v in ("Enabled", "Disabled")),
    )
    known = [v for v in values if _value(v) is not None]
    if not known:
        return None
    for name, shape in shapes:
        if all(shape(v) for v in known):
            return name
    if col == 0 and [_int(v) for v in values] == list(range(len(values))):
        return "index"
    # "Tesla K80", not "P2" or a VBIOS version "90.04.23.00.5F"
    if all(" " in v and re.search("[A-Za-z]{2}", v) for v in known):
        return "name"
    return None
