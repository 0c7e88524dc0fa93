"""matrices/intel.toml: the data's shape, its loader, and that detection reads it only when an
Intel display device is present (detect's start-up stays free of TOML elsewhere)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support import fakes

from envsetup.matrices import intel_ids
from envsetup.matrices.schema import MatricesError

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

DIRECTORY = Path(__file__).resolve().parents[3] / "matrices"
KEYS = {"family", "products", "ids", "source"}
ID_RE = re.compile(r"^0x[0-9a-f]{4}$")


def raw() -> dict[str, Any]:
    with (DIRECTORY / intel_ids.FILE).open("rb") as handle:
        return tomllib.load(handle)


def test_file_declares_schema_1_and_only_discrete_rows() -> None:
    document = raw()
    assert document.get("schema") == 1
    assert set(document) == {"schema", "discrete"}


def test_rows_have_known_keys_lowercase_ascending_ids_and_an_https_source() -> None:
    for n, row in enumerate(raw()["discrete"]):
        where = f"intel.toml [[discrete]] #{n + 1} ({row.get('family')})"
        assert set(row) == KEYS, where
        assert all(isinstance(row[key], str) and row[key] for key in KEYS - {"ids"}), where
        assert row["ids"] and all(ID_RE.match(device) for device in row["ids"]), where
        assert row["ids"] == sorted(row["ids"], key=lambda device: int(device, 16)), where
        assert row["source"].startswith("https://"), where


def test_no_id_in_two_rows_and_no_family_twice() -> None:
    rows = raw()["discrete"]
    ids = [device for row in rows for device in row["ids"]]
    assert len(ids) == len(set(ids)), sorted(d for d in set(ids) if ids.count(d) > 1)
    families = [row["family"] for row in rows]
    assert len(families) == len(set(families))


def test_loader_returns_every_id_as_an_integer() -> None:
    known = intel_ids.discrete_ids(DIRECTORY)
    assert known == {int(device, 16) for row in raw()["discrete"] for device in row["ids"]}
    assert 0x56A0 in known  # Arc A770
    assert 0x46A6 not in known  # Alder Lake integrated graphics


def test_a_broken_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / intel_ids.FILE).write_text('schema = 1\n[[discrete]]\nids = ["0xzz"]\n')
    with pytest.raises(MatricesError, match="cannot read the Intel GPU ids") as error:
        intel_ids.discrete_ids(tmp_path)
    assert "matrices/intel.toml" in (error.value.hint or "")


PROBE = """
import sys
from pathlib import Path
from envsetup.detect.findings import Findings
from envsetup.detect.intel import intel_xpu
found = intel_xpu(Path(sys.argv[1]), Findings())
print(found, "tomllib" in sys.modules or "tomli" in sys.modules,
      "envsetup.matrices.intel_ids" in sys.modules)
"""


@pytest.mark.parametrize(
    ("vendor", "device", "expected"),
    [
        (0x10DE, 0x2330, "False False False"),  # an NVIDIA H100 only: no TOML read
        (0x8086, 0x46A6, "False True True"),  # an Intel iGPU: the ids are read, and refuse it
        (0x8086, 0xE20B, "True True True"),  # Arc B580
    ],
)
def test_detect_reads_the_ids_only_for_an_intel_display_device(
    tmp_path: Path, vendor: int, device: int, expected: str
) -> None:
    fakes.pci_device(tmp_path, "0000:01:00.0", vendor, device)
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path)], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == expected.split()
