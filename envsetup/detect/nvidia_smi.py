"""Read whatever `nvidia-smi` printed — any format, any driver generation, pasted or not.

`parse(text)` recognises the format by itself (default table, `-q`, `-q -x`, `--query-gpu` CSV,
`-L`, `--version`, or a failure message) and returns a `SmiReport`. It is pure (text in, value
out) and never raises: support pastes arrive mangled, and a traceback helps nobody. What cannot
be read stays None; a text with nothing to read becomes an `unparseable` problem.

The CUDA version is reported only as printed: deriving it from the driver version is the
detector's job, through the table in `matrices/`.
"""

from __future__ import annotations

import collections
import csv
import html
import itertools
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable

from envsetup.model.machine import Gpu, MigDevice, Problem, driver_version

if TYPE_CHECKING:
    from envsetup.model.machine import ProblemKind

__all__ = ["SmiReport", "fill_gaps", "parse"]

#: Longer texts are cut here: every real output fits many times over, and a bound keeps a
#: pasted log (or a hostile input) from costing seconds.
MAX_CHARS = 2_000_000


@dataclass(frozen=True)
class SmiReport:
    """What one `nvidia-smi` output says. `cuda_version` is the newest CUDA the driver
    supports, exactly as printed ("13.0"), or None when the output shows none."""

    format: str
    driver_version: str | None = None
    cuda_version: str | None = None
    gpus: tuple[Gpu, ...] = ()
    problems: tuple[Problem, ...] = ()
    nvml_version: str | None = None


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


# --- combining several outputs of one paste --------------------------------------------------

_GPU_FIELDS = ("name", "memory_mib", "compute_capability", "uuid", "bus_id", "mig_enabled")


def fill_gaps(gpus: Sequence[Gpu], others: Sequence[Gpu]) -> tuple[Gpu, ...]:
    """`gpus` with the facts they lack taken from the same GPUs as another source lists them:
    matched by UUID, else bus id, else index when both list as many GPUs."""
    twins = _Twins(tuple(others), by_index=len(others) == len(gpus))
    return tuple(_fill(gpu, twin) if (twin := twins.of(gpu)) else gpu for gpu in gpus)


def _richness(report: SmiReport) -> int:
    facts = [report.driver_version, report.cuda_version]
    facts += [getattr(gpu, field) for gpu in report.gpus for field in _GPU_FIELDS]
    return sum(fact is not None for fact in facts)


def _merge(primary: SmiReport, others: list[SmiReport]) -> SmiReport:
    """`primary` with the facts it lacks taken from the other outputs of the same paste."""
    reports = [primary, *others]
    gpus = list(primary.gpus)
    for other in others:
        gpus = list(fill_gaps(gpus, other.gpus))
    return replace(
        primary,
        driver_version=next((r.driver_version for r in reports if r.driver_version), None),
        cuda_version=next((r.cuda_version for r in reports if r.cuda_version), None),
        nvml_version=next((r.nvml_version for r in reports if r.nvml_version), None),
        gpus=tuple(gpus),
    )


class _Twins:
    """Finds the same physical GPU in another output: by UUID, else bus id, else (when both
    outputs list as many GPUs) by index. Dictionaries keep a 16-GPU (or hostile) paste linear."""

    def __init__(self, gpus: tuple[Gpu, ...], *, by_index: bool) -> None:
        self.uuid: dict[str, Gpu] = {}
        self.bus: dict[str, Gpu] = {}
        self.index = {gpu.index: gpu for gpu in reversed(gpus)} if by_index else {}
        for gpu in gpus:
            self.add(gpu)

    def add(self, gpu: Gpu) -> None:
        if gpu.uuid:
            self.uuid.setdefault(gpu.uuid, gpu)
        if gpu.bus_id:
            self.bus.setdefault(_bus_key(gpu.bus_id), gpu)

    def of(self, gpu: Gpu) -> Gpu | None:
        if gpu.uuid and self.uuid:
            return self.uuid.get(gpu.uuid)
        if gpu.bus_id and self.bus:
            return self.bus.get(_bus_key(gpu.bus_id))
        return self.index.get(gpu.index)


def _bus_key(bus_id: str) -> str:
    """ "00000000:03:00.0" and "0000:03:00.0" (older drivers) name the same slot."""
    domain, _, rest = bus_id.lower().partition(":")
    return f"{domain.lstrip('0')}:{rest}"


def _fill(gpu: Gpu, twin: Gpu) -> Gpu:
    missing = {f: getattr(twin, f) for f in _GPU_FIELDS if getattr(gpu, f) is None}
    if gpu.name and twin.name and gpu.name.endswith("...") and twin.name.startswith(gpu.name[:-3]):
        missing["name"] = twin.name  # the table cuts long names; -L and -q do not
    if not gpu.mig_devices and twin.mig_devices:
        return replace(gpu, mig_devices=twin.mig_devices, **missing)
    return replace(gpu, **missing)


# --- cleaning pastes -------------------------------------------------------------------------

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


# --- shared value readers --------------------------------------------------------------------

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


# --- default table ---------------------------------------------------------------------------

# A web page or a chat client may break the header line after each field ("NVIDIA-SMI 517.00"
# / "Driver Version: 517.00" / "CUDA Version: 11.7"): line breaks and box marks count as spaces.
_TABLE_HEADER = re.compile(r"NVIDIA-SMI[ \t]+[0-9.]+[\s|]+(?:Driver|KMD)[ \t]+Version[ \t]*:")
_GPU_ROW_END = ("On", "Off", "WDDM", "TCC", "MCDM", "N/A", "ERR!")


def _read_table(text: str, lines: list[str]) -> SmiReport | None:
    """The default table, any layout. The text is read as one stream of cells between "|"
    marks, so box widths and lines that a web page re-wrapped or joined do not matter; a GPU
    row is the cell followed by a cell that starts with a bus id."""
    cells = [" ".join(cell.split()) for cell in " ".join(lines).split("|")]
    header = _TABLE_HEADER.search(text) is not None
    mig_column = "MIG M." in text
    gpus: list[Gpu] = []
    migs: list[tuple[int, MigDevice]] = []
    section = "gpus"
    for i, cell in enumerate(cells):
        following = cells[i + 1] if i + 1 < len(cells) else ""
        if cell.startswith("MIG devices"):
            section = "mig"
        elif cell.startswith("Processes"):
            section = "processes"
        elif section == "gpus" and _BUS_ID.match(following):
            gpu = _table_gpu(cell, following, _gpu_block(cells, i + 2), mig_column=mig_column)
            if gpu is not None:
                gpus.append(gpu)
        elif section == "mig":
            mig = _table_mig(cell, following)
            if mig is not None:
                migs.append(mig)
    if not header and not gpus and not migs:
        return None
    if not gpus:
        # Only the "MIG devices" table was pasted: its rows still say which GPUs are
        # partitioned (MIG on), though not their names or compute capabilities.
        gpus = [Gpu(index=index, mig_enabled=True) for index in sorted({i for i, _ in migs})]
    # nvidia-smi prints "No devices were found" instead of an empty table, so a header
    # without GPU rows is a cut-off output (or a crash, as WSL's segfaulting nvidia-smi).
    cut = () if gpus or not header else (_unparseable(_TABLE_CUT),)
    return SmiReport(
        "table",
        driver_version=_driver(text),
        cuda_version=_cuda(text),
        gpus=_attach_migs(gpus, migs),
        problems=cut,
    )


def _table_gpu(cell: str, bus_cell: str, block: list[str], *, mig_column: bool) -> Gpu | None:
    words = cell.split()
    if len(words) < 2 or not _is_number(words[0]):
        return None
    name = cell[len(words[0]) :].strip()
    if words[-1] in _GPU_ROW_END:
        name = name[: -len(words[-1])].strip()
    memory = next((_total(c) for c in block if re.search(r"MiB\s*$", c)), None)
    mig = next((_mig_mode(c) for c in block if c in ("Enabled", "Disabled")), None)
    return Gpu(
        index=int(words[0]),
        name=_value(name),
        memory_mib=memory,
        bus_id=_bus_id(bus_cell),
        mig_enabled=mig if mig_column else None,
    )


def _gpu_block(cells: list[str], start: int) -> list[str]:
    """The cells of one GPU's rows: from `start` up to the next GPU row or section."""
    end = start
    while end < len(cells):
        following = cells[end + 1] if end + 1 < len(cells) else ""
        if _BUS_ID.match(following) or cells[end].startswith(("Processes", "MIG devices")):
            break
        end += 1
    return cells[start:end]


def _table_mig(cell: str, memory_cell: str) -> tuple[int, MigDevice] | None:
    """A MIG devices row: "GPU GI CI MIG-Dev" numbers, then "used / total" memory."""
    words = cell.split()
    if len(words) != 4 or not all(map(_is_number, words)):
        return None
    gpu, gi, ci, dev = (int(word) for word in words)
    memory = _total(memory_cell) if "/" in memory_cell else None
    return gpu, MigDevice(index=dev, gpu_instance=gi, compute_instance=ci, memory_mib=memory)


def _attach_migs(gpus: list[Gpu], migs: list[tuple[int, MigDevice]]) -> tuple[Gpu, ...]:
    by_gpu: dict[int, list[MigDevice]] = {}
    for index, mig in migs:
        by_gpu.setdefault(index, []).append(mig)
    return tuple(
        replace(gpu, mig_devices=tuple(by_gpu[gpu.index])) if gpu.index in by_gpu else gpu
        for gpu in gpus
    )


# --- nvidia-smi -q ---------------------------------------------------------------------------

_Q_GPU = re.compile(r"^\s*GPU\s+(" + _BUS_ID.pattern + r")\s*$")


def _read_query_log(text: str, lines: list[str]) -> SmiReport | None:
    """`nvidia-smi -q`: indented "Key : value" lines. Keys are matched with any width and
    without "(deprecated)"-style suffixes; sections come from indentation when the paste kept
    it, else from the last section header seen."""
    if "NVSMI LOG" not in text and not re.search(r"^[ \t]*Attached GPUs[ \t]*:", text, re.M):
        return None
    gpus: list[_QGpu] = []
    sections: list[tuple[int, str]] = []
    for line in lines:
        gpu_header = _Q_GPU.match(line)
        if gpu_header:
            gpus.append(_QGpu(bus_id=gpu_header.group(1)))
            sections = []
            continue
        key, colon, value = line.partition(":")  # keys hold no colon; values may
        if not gpus or not key.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if not colon or not value.strip():  # a section header: "MIG Mode", "FB Memory Usage"
            sections = [s for s in sections if s[0] < indent] + [(indent, _key(key))]
            continue
        inner = [s[1] for s in sections if s[0] < indent] or [s[1] for s in sections[-1:]]
        gpus[-1].take(_key(key), value.strip(), inner)
    return SmiReport(
        "query",
        driver_version=_driver(text),
        cuda_version=_cuda(text),
        gpus=tuple(gpu.build(i) for i, gpu in enumerate(gpus)),
    )


def _key(text: str) -> str:
    """ "Minor Number (deprecated)" -> "minor number"."""
    return text.partition("(")[0].partition("[")[0].strip().lower()


class _QGpu:
    """Accumulates one GPU section of `-q` output."""

    def __init__(self, bus_id: str) -> None:
        self.fields: dict[str, str] = {"bus id": bus_id}
        self.migs: list[dict[str, str]] = []

    def take(self, key: str, value: str, path: list[str]) -> None:
        section = path[-1] if path else ""
        # Drivers before 590 nest "MIG Device" sections under "MIG Devices"; 590+ put them
        # straight under the GPU, with "Shared FB Memory Usage".
        if "mig devices" in path or "mig device" in path:
            if key == "index" or not self.migs:
                self.migs.append({})
            self.migs[-1].setdefault(f"{section}/{key}", value)
            self.migs[-1].setdefault(key, value)
        else:
            self.fields.setdefault(f"{section}/{key}", value)
            self.fields.setdefault(key, value)

    def build(self, index: int) -> Gpu:
        get = self.fields.get
        migs = tuple(
            MigDevice(
                index=_int(mig.get("index")),
                gpu_instance=_int(mig.get("gpu instance id")),
                compute_instance=_int(mig.get("compute instance id")),
                memory_mib=_mib(
                    mig.get("fb memory usage/total") or mig.get("shared fb memory usage/total")
                ),
            )
            for mig in self.migs
        )
        return Gpu(
            index=index,
            name=_value(get("product name")),
            memory_mib=_mib(get("fb memory usage/total")),
            uuid=_uuid(get("gpu uuid")),
            bus_id=_bus_id(get("bus id")),
            mig_enabled=_mig_mode(get("mig mode/current")),
            mig_devices=migs,
        )


# --- nvidia-smi -q -x ------------------------------------------------------------------------


def _read_xml(text: str, lines: list[str]) -> SmiReport | None:
    """`nvidia-smi -q -x`. Any entity declaration is refused before parsing (no entity
    expansion, no external fetch); the DOCTYPE is never fed. A cut-off document still yields
    what was complete before the cut."""
    start = text.find("<nvidia_smi_log")
    if start < 0:
        return None
    if "<!ENTITY" in text:
        return SmiReport("xml", problems=(_unparseable(_XML_ENTITY),))
    root, error = _xml_root(text[start:])
    if root is None:
        return SmiReport("xml", problems=(_unparseable(_XML_BROKEN.format(exc=error)),))
    return SmiReport(
        "xml",
        # 610+ rename the fields in -q and --query-gpu ("KMD Version", kmd_version); the XML
        # is assumed to follow (no 610 XML sample yet), the old tags still come second.
        driver_version=driver_version(
            root.findtext("kmd_version") or root.findtext("driver_version")
        ),
        cuda_version=_version(root.findtext("cuda_umd_version") or root.findtext("cuda_version")),
        gpus=tuple(_xml_gpu(i, gpu) for i, gpu in enumerate(root.iter("gpu"))),
    )


def _xml_root(body: str) -> tuple[ET.Element | None, str | None]:
    """The document element, parsed as far as the text allows, and the parse error if any."""
    parser: ET.XMLPullParser[ET.Element] = ET.XMLPullParser(events=("start",))
    root: ET.Element | None = None
    error: str | None = None
    try:
        parser.feed(body)
        parser.close()
    except ET.ParseError as exc:
        error = str(exc)
    try:
        for event in parser.read_events():
            if root is None and len(event) == 2 and isinstance(event[1], ET.Element):
                root = event[1]
    except ET.ParseError as exc:
        error = error or str(exc)
    return root, error


def _xml_gpu(index: int, gpu: ET.Element) -> Gpu:
    migs = tuple(
        MigDevice(
            index=_int(mig.findtext("index")),
            gpu_instance=_int(mig.findtext("gpu_instance_id")),
            compute_instance=_int(mig.findtext("compute_instance_id")),
            memory_mib=_mib(mig.findtext("fb_memory_usage/total")),
        )
        for mig in gpu.iterfind("mig_devices/mig_device")
    )
    return Gpu(
        index=index,
        name=_value(gpu.findtext("product_name")),
        memory_mib=_mib(gpu.findtext("fb_memory_usage/total")),
        uuid=_uuid(gpu.findtext("uuid")),
        bus_id=_bus_id(gpu.findtext("pci/pci_bus_id") or gpu.get("id")),
        mig_enabled=_mig_mode(gpu.findtext("mig_mode/current_mig")),
        mig_devices=migs,
    )


# --- nvidia-smi --version --------------------------------------------------------------------


def _read_version(text: str, lines: list[str]) -> SmiReport | None:
    """`nvidia-smi --version`: "NVIDIA-SMI version : ...", "DRIVER version : ..." lines."""
    if not re.search(r"NVIDIA-SMI version\s*:", text, re.IGNORECASE):
        return None
    return SmiReport(
        "version",
        driver_version=_driver(text),
        cuda_version=_cuda(text),
        nvml_version=_version_after(text, "NVML version"),
    )


# --- nvidia-smi -L ---------------------------------------------------------------------------

# Searched anywhere, not per line: web pages join -L lines into one ("GPU 0: ... GPU 1: ...").
# Bounded lengths keep a hostile text linear.
_L_ENTRY = re.compile(
    r"\bGPU (\d{1,3}): ([^(\n]{0,120})\(UUID: ?([^)\n]{0,120})\)"
    r"|\bMIG[ \t]+(\S{1,20})[ \t]+Device[ \t]+(\d{1,3}):[ \t]*\(UUID: ?([^)\n]{0,120})\)"
)


def _read_list(text: str, lines: list[str]) -> SmiReport | None:
    """`nvidia-smi -L`: a "GPU i: name (UUID: ...)" entry per GPU; the "MIG ..." entries
    after a GPU are its MIG devices, not GPUs."""
    listed: list[tuple[Gpu, list[MigDevice]]] = []
    for entry in _L_ENTRY.finditer(text):
        index, name, uuid, profile, mig_index, mig_uuid = entry.groups()
        if index is not None:
            listed.append((Gpu(index=int(index), name=_value(name), uuid=_uuid(uuid)), []))
        elif listed:
            listed[-1][1].append(_list_mig(profile, mig_index, mig_uuid))
    gpus = tuple(
        replace(gpu, mig_enabled=True, mig_devices=tuple(migs)) if migs else gpu
        for gpu, migs in listed
    )
    return SmiReport("list", gpus=gpus) if gpus else None


def _list_mig(profile: str, index: str, uuid_text: str) -> MigDevice:
    uuid = _uuid(uuid_text)
    # Drivers before 470 named MIG devices "MIG-GPU-<uuid>/<gi>/<ci>".
    ids = re.search(r"/(\d+)/(\d+)$", uuid or "")
    return MigDevice(
        index=int(index),
        name=profile,
        uuid=uuid,
        gpu_instance=int(ids.group(1)) if ids else None,
        compute_instance=int(ids.group(2)) if ids else None,
    )


# --- nvidia-smi --query-gpu=... --format=csv -------------------------------------------------

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


_READERS: tuple[Callable[[str, list[str]], SmiReport | None], ...] = (
    _read_xml,
    _read_version,
    _read_query_log,
    _read_table,
    _read_list,
    _read_csv,
)


# --- failures --------------------------------------------------------------------------------

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


def _unparseable(message: str) -> Problem:
    return Problem("unparseable", message, _UNPARSEABLE_HINT)


_NOTHING_FOUND = "recognised nvidia-smi {fmt} output but found neither a driver version nor a GPU"
_UNKNOWN = "this is not nvidia-smi output that envsetup can read ({what})"
_TABLE_CUT = "the nvidia-smi table ends before its first GPU row (output cut off or crashed)"
_XML_ENTITY = "the XML declares entities; refusing to expand them"
_XML_BROKEN = "the nvidia-smi XML output is malformed or cut off ({exc})"
_UNPARSEABLE_HINT = (
    "Paste the complete, unedited output of `nvidia-smi` (or `nvidia-smi -q`), or set "
    "ENVSETUP_CUDA_DRIVER_VERSION to the driver version."
)


# --- the pasted machine's operating system ----------------------------------------------------

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
