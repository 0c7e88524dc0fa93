"""The suite each `verify` nox cell runs inside its venv, with the envsetup pytest plugin.

It needs torch, so it is collected only inside a cell (the noxfile sets ENVSETUP_CELL_TORCH and
ENVSETUP_CELL_VARIANT); the project's own test run leaves it alone.
"""

from __future__ import annotations

import os

collect_ignore_glob = [] if os.environ.get("ENVSETUP_CELL_TORCH") else ["test_*.py"]
