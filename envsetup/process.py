"""Children as a group: every program envsetup runs is started in its own process group and
stopped as one.

`python -m venv` runs ensurepip as a grandchild, pip runs build backends, a wrapper script runs
the real tool: stopping only the direct child leaves them writing into a directory that rollback
is deleting, or sleeping forever. Each child starts a new session (POSIX), so the whole tree can
be signalled, and since a terminal's Ctrl-C no longer reaches it, stopping it is our job on every
way out: success, failure, timeout, Ctrl-C, SIGTERM/SIGHUP.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

__all__ = [
    "OutputFlood",
    "capture",
    "group_stopped",
    "signals_handled",
    "signals_ignored",
    "start",
    "stop",
]

_POSIX = os.name == "posix"

#: How long a group has, after SIGTERM, to exit on its own before SIGKILL.
GRACE_S = 5.0


class OutputFlood(Exception):
    """A child printed more than the caller's limit (and was stopped)."""


def start(argv: Sequence[str], **popen: Any) -> subprocess.Popen[Any]:
    """Popen `argv` as the leader of a new process group (a new session on POSIX)."""
    return subprocess.Popen(list(argv), start_new_session=_POSIX, **popen)


def _signal_group(process: subprocess.Popen[Any], signum: int) -> None:
    """Send `signum` to the child's whole group (to the child alone off POSIX)."""
    if not _POSIX:
        if process.poll() is None:
            process.kill()
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def _running(process: subprocess.Popen[Any]) -> bool:
    """Whether the child, or anything left in its group, can still act (zombies cannot: where
    PID 1 does not reap, as in many containers, orphans stay zombies for good)."""
    if process.poll() is None:
        return True
    if not _POSIX:
        return False
    return _group_running(process.pid)


def _group_exists(pgid: int) -> bool:
    """Any member of the group at all (zombies included)."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


if sys.platform == "linux":

    def _group_running(pgid: int) -> bool:
        """Any member of the group that is not a zombie, from /proc/PID/stat (scanned only when
        the group still has members: after a clean exit it has none, and the scan is skipped)."""
        if not _group_exists(pgid):
            return False
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                stat = Path(entry.path, "stat").read_bytes()
            except OSError:
                continue  # it ended while we looked
            state, _ppid, pgrp = stat[stat.rindex(b")") + 2 :].split()[:3]
            if int(pgrp) == pgid and state not in (b"Z", b"X"):
                return True
        return False

else:

    def _group_running(pgid: int) -> bool:
        """Any member of the group (zombies included: no portable way to tell them apart)."""
        return _group_exists(pgid)


def _gone_within(process: subprocess.Popen[Any], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _running(process):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def stop(process: subprocess.Popen[Any], *, grace: float = GRACE_S) -> None:
    """SIGTERM to the whole group, SIGKILL to what is left after `grace`; returns once no member
    can act any more, so nothing writes into a directory the caller is about to delete.

    Signals to envsetup are ignored meanwhile: a second Ctrl-C must not abandon the stop and let
    the children write on while the caller cleans up.
    """
    with signals_ignored():
        _signal_group(process, signal.SIGTERM)
        if not _gone_within(process, grace):
            _signal_group(process, signal.SIGKILL)
            _gone_within(process, GRACE_S)


@contextlib.contextmanager
def signals_handled(names: Sequence[str], handler: Any) -> Iterator[None]:
    """Install `handler` for the named signals (those this OS has) while the block runs; a no-op
    off the main thread, where handlers cannot be set and signals never arrive."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = [getattr(signal, name) for name in names if hasattr(signal, name)]
    previous = {signum: signal.signal(signum, handler) for signum in signals}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def signals_ignored() -> contextlib.AbstractContextManager[None]:
    """Ctrl-C, SIGTERM and SIGHUP wait until the block is done (cleanup that must finish)."""
    return signals_handled(("SIGINT", "SIGTERM", "SIGHUP"), signal.SIG_IGN)


@contextlib.contextmanager
def group_stopped(
    process: subprocess.Popen[Any], *, grace: float = GRACE_S
) -> Iterator[subprocess.Popen[Any]]:
    """Run the block; on any way out, the child's whole group is stopped (already-exited
    members cost nothing; a grandchild left behind by a finished leader is ended too)."""
    try:
        yield process
    finally:
        if _running(process):
            stop(process, grace=grace)


def capture(
    argv: Sequence[str],
    *,
    timeout: float,
    limit: int,
    env: dict[str, str] | None = None,
    grace: float = GRACE_S,
) -> tuple[int, bytes, bytes]:
    """Run `argv` to the end: (exit code, stdout, stderr), at most `limit` bytes of output.

    Raises subprocess.TimeoutExpired after `timeout` s, OutputFlood past `limit`; the group is
    stopped either way (SIGKILL after `grace` s: a probe that writes nothing can take 0).
    OSError when it cannot start.
    """
    process = start(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    with group_stopped(process, grace=grace):
        assert process.stdout is not None and process.stderr is not None
        buffers = (bytearray(), bytearray())
        flooded = threading.Event()

        def pump(stream: IO[bytes], buffer: bytearray) -> None:
            while chunk := stream.read1(65536):  # type: ignore[attr-defined]
                buffer += chunk
                if len(buffers[0]) + len(buffers[1]) > limit:
                    flooded.set()
                    return

        pumps = [
            threading.Thread(target=pump, args=pair, daemon=True)
            for pair in zip((process.stdout, process.stderr), buffers)
        ]
        for thread in pumps:
            thread.start()
        deadline = time.monotonic() + timeout
        while any(thread.is_alive() for thread in pumps) and not flooded.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                raise subprocess.TimeoutExpired(list(argv), timeout)
            for thread in pumps:
                thread.join(min(left, 0.05))
        if flooded.is_set():
            raise OutputFlood(limit)
        code = process.wait(max(deadline - time.monotonic(), 0.01))
    return code, bytes(buffers[0]), bytes(buffers[1])
