"""Run a Plan in an environment: the installer's own output streams through, then verify.

The command is `install_args.install_argv` (the same one `plan` prints), so what users review is
what runs. Replacing an existing torch build is a decision users make: asked on a terminal,
`--yes` otherwise, never silently.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import sys
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import TextIO

from envsetup.errors import EnvsetupError
from envsetup.install.argv import install_argv
from envsetup.install.isolation import announce, isolate
from envsetup.model.machine import Machine
from envsetup.model.plan import Plan, torch_specifier
from envsetup.process import group_stopped, signals_handled, start
from envsetup.redact import redact
from envsetup.verify import Expectation, VerifyReport, verify

__all__ = [
    "StepFailed",
    "confirm_replace",
    "install",
    "installer_argv",
    "interruptible",
    "run_step",
]

TAIL_LINES = 12

#: Installer messages that mean "the index has no such wheel", and what to do about it.
_NO_WHEEL = ("No matching distribution", "Could not find a version", "No solution found")

#: Messages that mean the index could not be reached at all (DNS, refused, offline, proxy):
#: pip and uv then also say "no matching distribution", which is not the cause.
_UNREACHABLE = (
    "Name or service not known",
    "Temporary failure in name resolution",
    "nodename nor servname",
    "getaddrinfo failed",
    "failed to lookup address",
    "dns error",
    "Connection refused",
    "Network is unreachable",
    "No route to host",
    "NewConnectionError",
    "Max retries exceeded",
    "ProxyError",
    "Failed to fetch",
    "error sending request",
    "timed out",
    "Connection reset",
)


class StepFailed(EnvsetupError):
    """A step of install/venv failed: which one, the command, and its last lines of output."""

    def __init__(
        self, step: str, detail: str, *, tail: Sequence[str] = (), hint: str | None = None
    ) -> None:
        tail = [redact(line) for line in tail]  # the command, and what the installer echoed
        shown = "".join(f"\n    | {line}" for line in tail)
        hint = None if hint is None else redact(hint)
        super().__init__(f"step '{step}' failed: {redact(detail)}{shown}", hint=hint)
        self.step = step
        self.tail = tuple(tail)
        self._shown = shown

    def without_tail(self) -> EnvsetupError:
        """The same failure for a user who just watched the installer's output scroll by:
        its last lines are right above, so they are not printed a second time."""
        if self.step == "verify" or not self.tail:  # verify's lines are checks, not output
            return self
        message = self.message.replace("; its last lines:" + self._shown, " (its output is above)")
        return EnvsetupError(message, hint=self.hint)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def interruptible() -> contextlib.AbstractContextManager[None]:
    """SIGTERM and SIGHUP act like Ctrl-C in the block, so cleanup code runs and the installer
    is stopped rather than orphaned."""
    return signals_handled(("SIGTERM", "SIGHUP"), _raise_interrupt)


def find_uv() -> str:
    """uv on PATH, else the one installed next to this interpreter (`pip install uv`)."""
    found = shutil.which("uv")
    if found:
        return found
    sibling = Path(sys.executable).with_name("uv.exe" if sys.platform == "win32" else "uv")
    if sibling.exists():
        return str(sibling)
    raise EnvsetupError(
        "--installer uv: no `uv` executable on PATH",
        hint="install it (`pip install uv`, or see https://docs.astral.sh/uv/) or use "
        "--installer pip",
    )


def installer_argv(plan: Plan, *, installer: str, python: str) -> list[str]:
    """install_argv with the uv executable located, so the argv runs as printed."""
    argv = install_argv(plan, installer=installer, python=python)
    if installer == "uv":
        argv[0] = find_uv()
    return argv


def _failure_hint(argv: Sequence[str], tail: Sequence[str]) -> str:
    text = "\n".join(tail)
    unreachable = next((marker for marker in _UNREACHABLE if marker in text), None)
    if unreachable is not None:
        return (
            f"the index could not be reached ({unreachable}): a network failure, not a missing "
            "wheel; check the connection, DNS and proxy (HTTPS_PROXY), or use a reachable "
            "mirror with --index-url-base"
        )
    if any(marker in text for marker in _NO_WHEEL):
        return (
            "the index has no wheel matching this Python and platform: check "
            "--index-url-base (a mirror may lag behind download.pytorch.org), or run "
            "`envsetup plan` to see which builds would work"
        )
    if "No space left" in text:
        return "free disk space (torch CUDA wheels need several GB), then retry"
    return f"rerun the command to see its full output: {shlex.join(argv)}"


def run_step(
    step: str, argv: Sequence[str], *, out: TextIO | None = None, hint: str | None = None
) -> None:
    """Run one step with its output streaming through to `out`; raise StepFailed on failure."""
    out = out or sys.stdout
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    isolation = isolate(os.environ)
    announce(isolation, lambda notice: print(notice, file=out))
    print(f"$ {redact(shlex.join(argv))}", file=out, flush=True)
    try:
        process = start(
            argv,
            env=isolation.environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            bufsize=1,
        )
    except OSError as error:
        raise StepFailed(step, f"could not start {argv[0]!r}: {error.strerror}") from None
    # Ctrl-C, SIGTERM, a failing `out`: the installer and its children must not outlive us.
    with group_stopped(process):
        assert process.stdout is not None
        for line in process.stdout:
            out.write(line)
            out.flush()
            tail.append(line.rstrip())
        code = process.wait()
    if code != 0:
        raise StepFailed(
            step,
            f"`{shlex.join(argv)}` exited with {code}; its last lines:",
            tail=list(tail),
            hint=hint or _failure_hint(argv, list(tail)),
        )


def confirm_replace(
    plan: Plan,
    python: str,
    *,
    yes: bool,
    interactive: bool,
    ask: Callable[[str], str] = input,
) -> None:
    """Replacing an installed torch build needs a yes: typed on a terminal, or `--yes`."""
    replaced = ", ".join(item for item in (plan.replaces, plan.upgrades) if item)
    if not replaced or yes:
        return
    change = f"replace {replaced} in {python} with {' '.join(plan.packages)}"
    if not interactive:
        raise EnvsetupError(
            f"this would {change}, and there is no terminal to ask for confirmation",
            hint="rerun with --yes to replace it, or build a fresh environment with "
            "`envsetup venv PATH`",
        )
    try:
        answer = ask(f"{change[0].upper()}{change[1:]}? [y/N] ")
    except EOFError:
        answer = ""
    if answer.strip().lower() not in ("y", "yes"):
        raise EnvsetupError("nothing was installed: replacing the existing build was declined")


def install(
    plan: Plan,
    *,
    python: str,
    installer: str = "pip",
    machine: Machine | None = None,
    out: TextIO | None = None,
) -> VerifyReport:
    """Install `plan` into the environment of `python`, then verify that environment."""
    run_step("install", installer_argv(plan, installer=installer, python=python), out=out)
    return verify(python, machine=machine, expect=expectation(plan))


def expectation(plan: Plan) -> Expectation:
    """What verify should find after `plan` ran: that exact torch release and variant."""
    return Expectation(torch=torch_specifier(plan.torch), variant=plan.variant)
