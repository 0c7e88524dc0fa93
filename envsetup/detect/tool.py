"""Run an external tool (nvidia-smi, rocm_agent_enumerator) that may hang, crash or be missing.

A hung `nvidia-smi` (a wedged driver does that) must never hang us: the tool runs in its own
process group (`envsetup.process`, imported only when a tool runs, so machines where none needs
running never pay for `subprocess`) and the whole group is killed at the timeout.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from envsetup.model.machine import Problem

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (~3 ms of start-up)
if TYPE_CHECKING:
    pass


@dataclass(frozen=True)
class ToolResult:
    """What a tool printed, or the problem that kept it from printing anything useful."""

    stdout: str = ""
    stderr: str = ""
    returncode: int | None = None
    problem: Problem | None = None


def find_tool(
    name: str, environ: Mapping[str, str], extra: Sequence[Path] = ()
) -> tuple[Path | None, str | None]:
    """(executable, None) from PATH then `extra` paths; (None, why) when only a broken one exists.

    Written against PATH by hand instead of `shutil.which` so a non-executable file is reported
    ("found but not executable") rather than silently skipped.
    """
    suffixes = (".exe", "") if sys.platform == "win32" else ("",)
    directories = [Path(entry) for entry in environ.get("PATH", "").split(os.pathsep) if entry]
    candidates = [folder / (name + suffix) for folder in directories for suffix in suffixes]
    candidates.extend(extra)
    broken = None
    for candidate in candidates:
        if not candidate.is_file():
            continue
        if os.access(candidate, os.X_OK):
            return candidate, None
        broken = broken or f"{candidate} exists but is not executable"
    return None, broken


def run_tool(
    argv: Sequence[str],
    *,
    timeout: float,
    environ: Mapping[str, str] | None = None,
    name: str | None = None,
) -> ToolResult:
    """Run `argv`, capture text output; a timeout or a failure to start becomes a Problem
    whose message calls the tool `name` (by default the executable's file name)."""
    import subprocess

    from envsetup.process import OutputFlood, capture

    name = name or Path(argv[0]).name
    env = None if environ is None else dict(environ)
    try:
        # grace=0: a probe writes nothing worth waiting for; a hung one gets SIGKILL at once.
        code, stdout, stderr = capture(argv, timeout=timeout, limit=MAX_OUTPUT, env=env, grace=0)
    except OSError as error:
        return ToolResult(problem=Problem("not_found", f"{name} could not be started: {error}"))
    except subprocess.TimeoutExpired:
        return ToolResult(
            problem=Problem(
                "timeout",
                f"{name} did not answer within {timeout:g} s and was stopped",
                hint="a hung nvidia-smi usually means a wedged driver or GPU; check `dmesg` "
                "for Xid errors, or raise --timeout",
            )
        )
    except OutputFlood:
        return ToolResult(
            problem=Problem(
                "unparseable",
                f"{name} printed more than {MAX_OUTPUT >> 20} MiB and was stopped",
                hint=f"run {name} yourself to see what it prints",
            )
        )
    return ToolResult(
        stdout=stdout.decode("utf-8", "replace"),
        stderr=stderr.decode("utf-8", "replace"),
        returncode=code,
    )


#: The most a tool may print: `nvidia-smi -q` for 16 GPUs is about 200 KB. Without a bound, a
#: tool that floods its output (a broken wrapper) fills memory at hundreds of MB per second.
MAX_OUTPUT = 8 << 20
