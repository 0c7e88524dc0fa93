"""Run an external tool (nvidia-smi, rocm_agent_enumerator) that may hang, crash or be missing.

A hung `nvidia-smi` (a wedged driver does that) must never hang us: the tool runs in its own
process group and the whole group is killed at the timeout. `subprocess` is imported here only,
so machines where no tool needs running never pay for it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from envsetup.machine import Problem

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (~3 ms of start-up)
if TYPE_CHECKING:
    from typing import Any


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

    name = name or Path(argv[0]).name
    posix = os.name == "posix"
    try:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=None if environ is None else dict(environ),
            start_new_session=posix,
        )
    except OSError as error:
        return ToolResult(problem=Problem("not_found", f"{name} could not be started: {error}"))
    try:
        stdout, stderr = _communicate(process, timeout)
    except subprocess.TimeoutExpired:
        _kill(process, posix)
        return ToolResult(
            problem=Problem(
                "timeout",
                f"{name} did not answer within {timeout:g} s and was stopped",
                hint="a hung nvidia-smi usually means a wedged driver or GPU; check `dmesg` "
                "for Xid errors, or raise --timeout",
            )
        )
    except OverflowError:
        _kill(process, posix)
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
        returncode=process.returncode,
    )


#: The most a tool may print: `nvidia-smi -q` for 16 GPUs is about 200 KB. Without a bound, a
#: tool that floods its output (a broken wrapper) fills memory at hundreds of MB per second.
MAX_OUTPUT = 8 << 20


def _communicate(process: Any, timeout: float) -> tuple[bytes, bytes]:
    """`process.communicate(timeout)` that raises OverflowError past MAX_OUTPUT bytes."""
    import subprocess
    import threading

    buffers = (bytearray(), bytearray())
    flooded = threading.Event()

    def pump(stream: Any, buffer: bytearray) -> None:
        while chunk := stream.read1(65536):
            buffer += chunk
            if len(buffers[0]) + len(buffers[1]) > MAX_OUTPUT:
                flooded.set()
                return

    pumps = [
        threading.Thread(target=pump, args=(stream, buffer), daemon=True)
        for stream, buffer in zip((process.stdout, process.stderr), buffers)
    ]
    for thread in pumps:
        thread.start()
    deadline = time.monotonic() + timeout
    while any(thread.is_alive() for thread in pumps):
        if flooded.is_set():
            raise OverflowError
        left = deadline - time.monotonic()
        if left <= 0:
            raise subprocess.TimeoutExpired(process.args, timeout)
        for thread in pumps:
            thread.join(min(left, 0.05))
    if flooded.is_set():
        raise OverflowError
    process.wait(max(deadline - time.monotonic(), 0.01))
    return bytes(buffers[0]), bytes(buffers[1])


def _kill(process: Any, posix: bool) -> None:
    """Kill the tool's whole process group: a wrapper script's children must not outlive it."""
    if posix:
        import signal

        with contextlib.suppress(OSError):
            os.killpg(process.pid, signal.SIGKILL)
    process.kill()
    process.wait()
