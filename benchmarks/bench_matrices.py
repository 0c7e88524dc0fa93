"""`envsetup.matrices.load()`: parsing the TOML files against reading the per-user cache.

Every `plan` loads the matrices, so their cost is part of issue 2/6's "close to interpreter
start-up" target. Rows: a bare interpreter, a process that loads with the cache off (parses the
TOML, imports tomllib), one that loads from a warm cache (still reading and hashing the
TOML bytes: the cache is keyed on content); then the same in-process.
"""

from __future__ import annotations

import os
import sys
import tempfile
from typing import Any

LOAD = "import envsetup.matrices as m; m.load()"


def _with_cache(directory: str) -> str:
    return f"import os; os.environ['ENVSETUP_CACHE_DIR'] = {directory!r}; {LOAD}"


def run(report: Any) -> None:
    from envsetup import matrices

    python = sys.executable
    with tempfile.TemporaryDirectory() as cache:
        commands = {
            "python -c pass": [python, "-c", "pass"],
            "load() with the cache off (parses TOML)": [python, "-c", _with_cache("")],
            "load() from a warm cache": [python, "-c", _with_cache(cache)],
        }
        report.section("matrices load (whole process, sampled round-robin)")
        bare, parsed, cached = report.race(commands)
        report.ratio("load() cache off / python -c pass", parsed, bare)
        report.ratio("load() warm cache / python -c pass", cached, bare)

        directory = matrices.default_directory()
        saved = os.environ.get("ENVSETUP_CACHE_DIR")
        try:
            os.environ["ENVSETUP_CACHE_DIR"] = ""
            parse = report.call("cache off (in-process)", lambda: matrices._build(directory))
            os.environ["ENVSETUP_CACHE_DIR"] = cache
            warm = report.call("warm cache (in-process)", lambda: matrices._build(directory))
        finally:
            if saved is None:
                os.environ.pop("ENVSETUP_CACHE_DIR", None)
            else:
                os.environ["ENVSETUP_CACHE_DIR"] = saved
        report.ratio("in-process: cache off / warm cache", parse, warm)
