"""`nvidia-smi -q -x`: the XML log, read without expanding entities (a hostile paste cannot
make it fetch or grow).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from envsetup.detect.smi.report import SmiReport, _unparseable
from envsetup.detect.smi.values import _bus_id, _int, _mib, _mig_mode, _uuid, _value, _version
from envsetup.model.machine import Gpu, MigDevice, driver_version


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


_XML_ENTITY = "the XML declares entities; refusing to expand them"
_XML_BROKEN = "the nvidia-smi XML output is malformed or cut off ({exc})"
