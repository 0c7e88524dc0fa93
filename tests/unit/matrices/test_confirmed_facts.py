"""The planner ranks confirmed facts above inferred ones (issue 13).

Expectations are derived from matrices/ here, not hard-coded, so the tests keep holding when the
data is corrected: "the newest build whose arch list is *confirmed* to cover the GPUs".
"""

from __future__ import annotations

import json

import pytest

from envsetup.cli import main
from envsetup.matrices import Matrices, load
from envsetup.model.machine import Gpu, Machine, Platform
from envsetup.model.plan import Plan, Request
from envsetup.model.variants import parse_variant
from envsetup.resolve import NoCompatibleBuild, resolve
from envsetup.resolve.rules import driver_verdict

PLATFORM = "linux-x86_64"
PYTHON = "3.12"


def _machine(driver: str, *caps: str) -> Machine:
    gpus = tuple(Gpu(index=i, compute_capability=cap) for i, cap in enumerate(caps))
    return Machine(platform=Platform("linux", "x86_64", PYTHON), driver_version=driver, gpus=gpus)


def _newest_confirmed_fit(matrices: Matrices, driver: str, caps: tuple[str, ...]) -> str:
    """The newest confirmed release with a build the driver runs whose arch list is confirmed
    to cover every capability: what the planner must choose."""
    max_cuda = matrices.max_cuda_for_driver(driver, "linux")
    for release in reversed(matrices.releases):
        if not release.confirmed or not release.has_wheel(PYTHON, PLATFORM):
            continue
        for name in release.variants.get(PLATFORM, ()):
            variant = parse_variant(name)
            if variant.kind != "cuda" or not release.has_wheel(PYTHON, PLATFORM, name):
                continue
            if driver_verdict(matrices, variant, os="linux", driver=driver, max_cuda=max_cuda):
                continue
            archs = matrices.arch_list(str(release.version), name, PLATFORM)
            if archs is not None and archs.confirmed and all(archs.covers(c) for c in caps):
                return str(release.version)
    raise AssertionError(f"no confirmed build covers {caps} on driver {driver}")


def _arch_fact(plan: Plan) -> dict[str, object]:
    return next(f for f in plan.to_json()["facts"] if str(f["fact"]).startswith("arch list"))


def test_volta_and_blackwell_on_driver_575_get_a_confirmed_build() -> None:
    """The issue's case: V100 + RTX 5090 used to get 2.13.0+cu129 "with sm_70" from a list that
    copies 2.8's (confirmed = false)."""
    matrices = load()
    caps = ("7.0", "12.0")
    plan = resolve(_machine("575.57.08", *caps), Request())
    assert plan.torch == _newest_confirmed_fit(matrices, "575.57.08", caps)
    archs = matrices.arch_list(plan.torch, plan.variant, PLATFORM)
    assert archs is not None and archs.confirmed
    assert all(archs.covers(cap) for cap in caps)
    fact = _arch_fact(plan)
    assert fact["confirmed"] is True and fact["source"] == archs.source
    assert any("rests on" in reason and "(confirmed)" in reason for reason in plan.reasons)


def _inferred_only_case(matrices: Matrices) -> tuple[str, str, tuple[str, ...]]:
    """A (release, variant, caps) where only an inferred arch list covers the caps in that
    release: pinning the release leaves the planner nothing confirmed to fall back to."""
    for release in reversed(matrices.releases):
        if not release.confirmed or not release.has_wheel(PYTHON, PLATFORM):
            continue
        version = str(release.version)
        rows = [
            (name, matrices.arch_list(version, name, PLATFORM))
            for name in release.variants.get(PLATFORM, ())
            if name.startswith("cu")
        ]
        for name, archs in rows:
            if archs is None or archs.confirmed:
                continue
            caps = archs.sm
            others = [a for n, a in rows if n != name and a is not None and a.confirmed]
            if not any(all(a.covers(c) for c in caps) for a in others):
                return version, name, caps
    pytest.skip("every arch list that matters is confirmed now")


def test_inferred_list_is_used_only_when_nothing_confirmed_fits_and_says_so() -> None:
    matrices = load()
    version, variant, caps = _inferred_only_case(matrices)
    driver = "999.99"  # runs every CUDA build
    plan = resolve(_machine(driver, *caps), Request(torch=version))
    assert (plan.torch, plan.variant) == (version, variant)
    assert _arch_fact(plan)["confirmed"] is False
    assert any("rests on" in warning and "inferred" in warning for warning in plan.warnings)


def test_policy_strict_refuses_inferred_arch_lists() -> None:
    matrices = load()
    version, variant, caps = _inferred_only_case(matrices)
    with pytest.raises(NoCompatibleBuild) as failure:
        resolve(_machine("999.99", *caps), Request(torch=version, policy="strict"))
    assert f"{variant}'s arch list is inferred" in failure.value.message
    assert "--policy strict" in failure.value.message


def test_strict_unpinned_plan_rests_only_on_confirmed_arch_lists() -> None:
    matrices = load()
    caps = ("7.0", "12.0")
    plan = resolve(_machine("575.57.08", *caps), Request(policy="strict"))
    archs = matrices.arch_list(plan.torch, plan.variant, PLATFORM)
    assert archs is not None and archs.confirmed


def test_cli_json_lists_the_facts(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["plan", "--compute-cap", "7.0,12.0", "--driver", "575.57.08"]
    code = main([*argv, "--platform", PLATFORM, "--python", PYTHON, "--json"])
    document = json.loads(capsys.readouterr().out)
    assert code == 0
    facts = document["facts"]
    assert {"fact", "value", "source", "confirmed"} <= set(facts[0])
    arch = next(f for f in facts if f["fact"].startswith("arch list"))
    assert arch["confirmed"] is True
    assert "sm_70" in arch["value"] and "sm_120" in arch["value"]
