"""Golden decisions: each (machine, request) in tests/data/golden_plans.toml against matrices/.

The cases are data so that a reader can check a decision without reading code, and so that a
matrices update that changes a decision shows up as a reviewed diff of this file.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from envsetup.errors import UsageError
from envsetup.model.machine import Gpu, Machine, Platform
from envsetup.model.plan import Plan, Request
from envsetup.resolve import NoCompatibleBuild, resolve

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.9/3.10
    import tomli as tomllib

from envsetup.matrices import load

#: What an unpinned plan picks where nothing narrows it (docs/cli.md rule 4: releases none of
#: whose facts are confirmed are only planned when pinned), so "newest" cases follow the matrices.
NEWEST = next(release.torch for release in reversed(load().releases) if release.confirmed)


def _with_newest(value: Any) -> Any:
    """`{newest}` in any string of a case stands for NEWEST."""
    if isinstance(value, str):
        return value.replace("{newest}", NEWEST)
    if isinstance(value, list):
        return [_with_newest(item) for item in value]
    if isinstance(value, dict):
        return {key: _with_newest(item) for key, item in value.items()}
    return value


CASES = _with_newest(
    tomllib.loads((Path(__file__).parents[2] / "data" / "golden_plans.toml").read_text())["case"]
)


def build_machine(spec: dict[str, Any]) -> Machine:
    os_name, _, arch = spec.get("platform", "linux-x86_64").partition("-")
    gpus = []
    for index, entry in enumerate(spec.get("gpus", [])):
        if entry.startswith("amd:"):
            gpus.append(Gpu(index=index, vendor="amd", arch=entry[4:]))
        else:
            gpus.append(Gpu(index=index, compute_capability=None if entry == "?" else entry))
    visible = spec.get("visible")
    return Machine(
        platform=Platform(os=os_name, arch=arch, python=spec.get("python", "3.11")),
        driver_version=spec.get("driver"),
        cuda_version=spec.get("cuda"),
        gpus=tuple(gpus),
        visible_gpus=None if visible is None else tuple(visible),
        xpu=spec.get("xpu", False),
        backend_override=spec.get("override"),
    )


def build_request(spec: dict[str, Any]) -> Request:
    fields = {key: value for key, value in spec.items() if key != "with"}
    return Request(with_=tuple(spec.get("with", ())), **fields)


def _contains_each(found: tuple[str, ...] | list[str], fragments: list[str], what: str) -> None:
    for fragment in fragments:
        assert any(fragment in item for item in found), f"{what} lack {fragment!r}: {found}"


def _check_plan(plan: Plan, case: dict[str, Any]) -> None:
    document = plan.to_json()
    for key, expected in case.get("expect", {}).items():
        value = None if (key, expected) in (("index_url", "pypi"), ("replaces", "")) else expected
        assert document[key] == value, f"{key}: {document[key]!r} != {value!r}"
    _contains_each(plan.reasons, case.get("reasons", []), "reasons")
    _contains_each(plan.warnings, case.get("warnings", []), "warnings")
    _contains_each(plan.alternatives, case.get("alternatives", []), "alternatives")
    if case.get("no_warnings"):
        assert plan.warnings == ()
    assert plan.reasons, "every plan says why"
    assert all("extra-index" not in reason for reason in plan.reasons)


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_golden_decision(case: dict[str, Any]) -> None:
    machine = build_machine(case.get("machine", {}))
    request = build_request(case.get("request", {}))
    installed = case.get("installed")
    if "usage_error" in case:
        with pytest.raises(UsageError) as usage:
            resolve(machine, request, installed=installed)
        assert case["usage_error"] in usage.value.message
        return
    if "error" in case:
        with pytest.raises(NoCompatibleBuild) as failure:
            resolve(machine, request, installed=installed)
        assert case["error"] in failure.value.message, failure.value.message
        hint = failure.value.hint or ""
        for fragment in case.get("hint", []):
            assert fragment in hint, f"hint lacks {fragment!r}: {hint}"
        return
    _check_plan(resolve(machine, request, installed=installed), case)


def test_there_are_enough_golden_cases() -> None:
    assert len(CASES) >= 40
    assert len({case["id"] for case in CASES}) == len(CASES)
