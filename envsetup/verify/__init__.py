"""Verify an environment from the inside: run the self-contained check there, then diagnose.

The check (`_verify_check.py`) runs in the target interpreter with `python -c` because envsetup is
usually not installed there; it prints facts as JSON. The verdicts (`diagnose.py`) are made here,
where the Machine, the matrices and the planner are at hand, so that every failure comes with
the exact command that fixes it.
"""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from envsetup.errors import EnvsetupError
from envsetup.install.interpreter import reported_json, run_script
from envsetup.model.machine import Machine
from envsetup.verify import inside as _verify_check
from envsetup.verify.verdicts import Check, Expectation, build_variant, diagnose

__all__ = ["Check", "Expectation", "VerifyReport", "run_check", "verify"]

#: Real torch imports in ~4 s and initialises CUDA in ~5 s (H100 sample); --bench adds ~20 s.
CHECK_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class VerifyReport:
    """What `envsetup verify --json` prints; `ok` only when every check passed."""

    python: str
    python_version: str | None
    torch: str | None
    variant: str | None
    cuda: str | None
    devices: tuple[dict[str, Any], ...]
    checks: tuple[Check, ...]
    bench: dict[str, Any] | None = None
    machine: Machine | None = None  # what the checks judged against; a fleet merge re-plans it

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(check for check in self.checks if not check.ok)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "hostname": None if self.machine is None else self.machine.hostname,
            "python": self.python,
            "python_version": self.python_version,
            "torch": self.torch,
            "variant": self.variant,
            "cuda": self.cuda,
            "devices": list(self.devices),
            "checks": [
                {"name": c.name, "ok": c.ok, "detail": c.detail, "fix": c.fix} for c in self.checks
            ],
            "bench": self.bench,
            "machine": None if self.machine is None else self.machine.to_json(),
        }


def run_check(
    python: str, options: dict[str, Any], *, timeout: float = CHECK_TIMEOUT_S
) -> dict[str, Any]:
    """Run the check inside `python` and return the facts it reports."""
    source = Path(_verify_check.__file__).read_text(encoding="utf-8")
    not_found = EnvsetupError(
        f"no interpreter at {python!r}",
        hint="pass --python with the path of the environment's python (bin/python)",
    )
    timed_out = EnvsetupError(
        f"the check inside {python} did not finish within {timeout:.0f} s",
        hint="a GPU that hangs on initialisation shows up here; try `nvidia-smi` first",
    )
    argv = [python, "-c", source, json.dumps(options)]
    result = run_script(argv, timeout=timeout, not_found=not_found, timed_out=timed_out)
    facts = reported_json(result.stdout, _verify_check.MARKER)
    if isinstance(facts, dict):
        return facts
    tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-8:])
    raise EnvsetupError(
        f"the check inside {python} stopped before reporting (exit {result.returncode}):\n{tail}",
        hint="a crash while importing torch (segfault, missing shared library) ends up here; "
        f"try `{shlex.join([python, '-c', 'import torch'])}` to see it",
    )


def verify(
    python: str | None = None,
    *,
    machine: Machine | None = None,
    expect: Expectation | None = None,
    require_gpu: bool = False,
    bench: bool = False,
    fix: str | None = None,
    bench_options: dict[str, Any] | None = None,
) -> VerifyReport:
    """Check the environment of `python` (default: this interpreter) against `machine`.

    `fix` is the command that installs the right build; without it the planner is asked.
    """
    python = python or sys.executable
    options: dict[str, Any] = {"bench": bench, "gpu_expected": bool(machine and machine.gpus)}
    options.update(bench_options or {})
    facts = run_check(python, options)
    expect = expect or Expectation()
    checks = diagnose(facts, machine=machine, expect=expect, require_gpu=require_gpu, fix=fix)
    if fix is None and not all(check.ok for check in checks):
        # Planning costs a matrices load; only a failure needs the command that fixes it.
        fix = planned_fix(python, machine, facts, expect)
        checks = diagnose(facts, machine=machine, expect=expect, require_gpu=require_gpu, fix=fix)
    torch = facts.get("torch") or {}
    return VerifyReport(
        python=str(facts.get("executable") or python),
        python_version=facts.get("python"),
        torch=torch.get("version"),
        variant=build_variant(torch) if torch else None,
        cuda=torch.get("cuda"),
        devices=tuple(facts.get("devices") or ()),
        checks=tuple(checks),
        bench=facts.get("bench"),
        machine=machine,
    )


def planned_fix(
    python: str, machine: Machine | None, facts: dict[str, Any], expect: Expectation
) -> str:
    """The planner's install command for this machine and environment, or envsetup's own verb."""
    fallback = shlex.join(["envsetup", "install", "--python", python, "--yes"])
    if machine is None:
        return fallback
    from envsetup.install.argv import suggested_install

    torch = facts.get("torch") or {}
    installed = {name: info["installed"] for name, info in (facts.get("companions") or {}).items()}
    if torch.get("version"):
        installed["torch"] = torch["version"]
    version = facts.get("python")
    if version:
        from envsetup.detect.host import tag_of

        tag = tag_of(str(version), bool(facts.get("free_threaded")))
        machine = replace(machine, platform=replace(machine.platform, python=tag))
    backend = expect.variant or "auto"
    found = suggested_install(machine, python, installed, wanted=expect.torch, backend=backend)
    return found or fallback
