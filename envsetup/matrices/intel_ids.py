"""Intel discrete-GPU PCI device ids, from `matrices/intel.toml`.

Read only when an Intel display device sits on the PCI bus: detection on every other machine
never imports tomllib or opens the file.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

__all__ = ["FILE", "discrete_ids"]

FILE = "intel.toml"


@functools.lru_cache(maxsize=4)
def discrete_ids(directory: Path | None = None) -> frozenset[int]:
    """Every device id (vendor 0x8086) of a discrete or data-centre Intel GPU."""
    from envsetup.matrices import default_directory
    from envsetup.matrices.schema import MatricesError

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.9/3.10 only
        import tomli as tomllib

    path = (directory or default_directory()) / FILE
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
        return frozenset(int(device, 16) for row in document["discrete"] for device in row["ids"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise MatricesError(
            f"{path}: cannot read the Intel GPU ids ({error})",
            hint=f"reinstall envsetup, or restore matrices/{FILE} from git",
        ) from None
