"""`envsetup verify --merge`: many nodes' `verify --json` reports as one fleet verdict.

A shared environment is verified on every node (one `srun` task per node, a Job per node pool);
each node writes its own report. Merged, they say which nodes pass, which fail and why, and
give one fix for all: the install of the build the whole fleet runs, planned from the machine
descriptions the reports carry.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envsetup.errors import EnvsetupError, UsageError
from envsetup.resolve.fleet import Fleet, Node, documents, machine_from_json

__all__ = ["NodeVerdict", "merge", "merged_human", "merged_json"]


@dataclass(frozen=True)
class NodeVerdict:
    """One node's report, reduced to what a fleet verdict needs."""

    node: str
    source: str
    ok: bool
    python: str
    torch: str | None
    variant: str | None
    failures: tuple[dict[str, Any], ...]  # the failed checks: name, detail, fix
    machine: dict[str, Any] | None


@dataclass(frozen=True)
class Merged:
    verdicts: tuple[NodeVerdict, ...]
    fix: str | None

    @property
    def ok(self) -> bool:
        return all(verdict.ok for verdict in self.verdicts)


def merge(paths: Sequence[str]) -> Merged:
    """Read every report in `paths` (files, or folders of them) and plan one fix for all."""
    verdicts: list[NodeVerdict] = []
    for path in _files(paths):
        text = path.read_bytes().decode("utf-8", "replace").strip()
        found = documents(path, text)
        for position, report in enumerate(found, 1):
            where = f"{path}[{position - 1}]" if len(found) > 1 else str(path)
            verdicts.append(_verdict(report, where, path.stem if len(found) == 1 else where))
    if not verdicts:
        raise UsageError(
            "--merge: no verify reports found", hint="pass the files `verify --json` wrote"
        )
    return Merged(tuple(verdicts), None if all(v.ok for v in verdicts) else _fleet_fix(verdicts))


def _files(paths: Sequence[str]) -> list[Path]:
    files: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        elif path.is_file():
            files.append(path)
        else:
            raise UsageError(
                f"--merge {name!r}: no such file or folder",
                hint="pass the reports `envsetup verify --json` wrote on each node",
            )
    return files


def _verdict(report: Any, where: str, fallback: str) -> NodeVerdict:
    if not isinstance(report, dict) or not isinstance(report.get("checks"), list):
        raise UsageError(
            f"{where} is not an `envsetup verify --json` report (no list of checks)",
            hint="run `envsetup verify --json > DIR/$(hostname).json` on each node",
        )
    try:
        failures = tuple(
            {"name": check["name"], "detail": check["detail"], "fix": check.get("fix")}
            for check in report["checks"]
            if not check["ok"]
        )
    except (KeyError, TypeError) as error:
        raise UsageError(f"{where}: a check without {error}; not a verify report") from None
    machine = report.get("machine")
    return NodeVerdict(
        node=str(report.get("hostname") or fallback),
        source=where,
        ok=bool(report.get("ok")) and not failures,
        python=str(report.get("python") or "python"),
        torch=report.get("torch"),
        variant=report.get("variant"),
        failures=failures,
        machine=machine if isinstance(machine, dict) else None,
    )


def _fleet_fix(verdicts: Sequence[NodeVerdict]) -> str | None:
    """The install every node can run: the fleet's plan, into the shared environment. Without
    machine descriptions (reports of an older envsetup) there is no fleet to plan: None."""
    described = [verdict for verdict in verdicts if verdict.machine is not None]
    if not described:
        return None
    nodes = tuple(
        Node(verdict.node, machine_from_json(verdict.machine, verdict.source), verdict.source)
        for verdict in described
    )
    from envsetup.install.argv import install_argv
    from envsetup.model.plan import Request
    from envsetup.resolve.fleet import plan_fleet

    fleet = Fleet(nodes)
    python = described[0].python
    installed = next((v.torch for v in verdicts if v.torch), None)
    # The installed release first (least surprise), then whatever the fleet's best is.
    for spec in dict.fromkeys([installed.split("+")[0] if installed else None, None]):
        try:
            plan = plan_fleet(fleet, Request(torch=spec))
        except EnvsetupError:
            continue
        return shlex.join(install_argv(plan, python=python, reinstall=installed is not None))
    return None


def merged_json(merged: Merged) -> dict[str, Any]:
    return {
        "ok": merged.ok,
        "passed": [verdict.node for verdict in merged.verdicts if verdict.ok],
        "failed": [verdict.node for verdict in merged.verdicts if not verdict.ok],
        "nodes": [
            {
                "node": verdict.node,
                "source": verdict.source,
                "ok": verdict.ok,
                "torch": verdict.torch,
                "variant": verdict.variant,
                "failures": list(verdict.failures),
            }
            for verdict in merged.verdicts
        ],
        "fix": merged.fix,
    }


def merged_human(merged: Merged) -> str:
    """One line per node, the failed checks under each failing one, then the one fix."""
    width = max(len(verdict.node) for verdict in merged.verdicts)
    lines = []
    for verdict in merged.verdicts:
        build = f"torch {verdict.torch}" if verdict.torch else "no torch"
        lines.append(f"  {'ok  ' if verdict.ok else 'FAIL'}  {verdict.node:<{width}}  {build}")
        for failure in verdict.failures:
            lines.append(f"        {'':<{width}}  {failure['name']}: {failure['detail']}")
    failed = [verdict.node for verdict in merged.verdicts if not verdict.ok]
    total = len(merged.verdicts)
    lines.append("")
    if not failed:
        lines.append(f"all {total} nodes passed")
        return "\n".join(lines)
    lines.append(f"{len(failed)} of {total} nodes failed: {', '.join(failed)}")
    if merged.fix:
        lines.append(f"fix for all nodes: {merged.fix}")
    else:
        fixes = {f["fix"] for v in merged.verdicts for f in v.failures if f.get("fix")}
        lines += [f"fix: {fix}" for fix in sorted(fixes)]
    return "\n".join(lines)
