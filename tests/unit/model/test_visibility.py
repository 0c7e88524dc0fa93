"""CUDA_VISIBLE_DEVICES read by CUDA's own rule, the same for detect, plan and the plugin."""

from __future__ import annotations

from pathlib import Path

import pytest

from envsetup.detect import detect
from envsetup.integrations.pytest_devices import devices_from_machine, worker_gpus
from envsetup.model.machine import Gpu, Machine, MigDevice, Platform
from envsetup.model.plan import Request
from envsetup.model.visibility import cuda_visible, parse_entries
from envsetup.resolve import resolve

GPUS = (
    Gpu(index=0, uuid="GPU-aaaa-1111", compute_capability="9.0"),
    Gpu(index=1, uuid="GPU-abbb-2222", compute_capability="3.5"),
    Gpu(
        index=2,
        uuid="GPU-cccc-3333",
        compute_capability="9.0",
        mig_devices=(MigDevice(uuid="MIG-dd"),),
    ),
)


@pytest.mark.parametrize(
    ("raw", "shown", "ignored"),
    [
        ("0,7,1", (0,), ("7", "1")),  # CUDA stops at the first entry naming no GPU
        ("2,0", (2, 0), ()),  # order is CUDA's numbering: cuda:0 is GPU 2
        ("", (), ()),
        ("-1", (), ("-1",)),
        ("1,-1,0", (1,), ("-1", "0")),
        ("0,0,1", (0,), ("0", "1")),  # a repeat is invalid too
        ("0,GPU-aaaa", (0,), ("GPU-aaaa",)),  # the same GPU by UUID is a repeat
        ("GPU-c,1", (2, 1), ()),  # a unique UUID prefix names its GPU
        ("GPU-a,2", (), ("GPU-a", "2")),  # an ambiguous prefix names none
        ("MIG-dd,0", (2, 0), ()),
        ("0,,1", (0,), ("", "1")),
        ("none", (), ("none",)),
    ],
)
def test_cuda_rule(raw: str, shown: tuple[int, ...], ignored: tuple[str, ...]) -> None:
    seen = cuda_visible(parse_entries(raw), GPUS)
    assert tuple(gpu.index for gpu in seen.gpus) == shown
    assert seen.ignored == ignored
    assert seen.hides_all is (not shown)


def test_unset_shows_every_gpu() -> None:
    seen = cuda_visible(None, GPUS)
    assert seen.gpus == GPUS and not seen.hides_all


def _machine(visible: str | None) -> Machine:
    entries = None if visible is None else parse_entries(visible)
    return Machine(platform=Platform("linux", "x86_64", "3.11"), gpus=GPUS, visible_gpus=entries)


def test_detect_warns_that_cuda_stops_at_7(tmp_path: Path) -> None:
    environ = {"ENVSETUP_COMPUTE_CAP": "9.0,3.5,9.0", "CUDA_VISIBLE_DEVICES": "0,7,1"}
    machine = detect(root=tmp_path, environ=environ)
    assert machine.visible_gpus == ("0", "7", "1")
    assert (
        "CUDA_VISIBLE_DEVICES names GPU 7 but only 3 exist: CUDA ignores it and every entry "
        "after it ('7,1'); visible: 0"
    ) in machine.warnings


def test_detect_warns_about_a_repeated_entry(tmp_path: Path) -> None:
    environ = {"ENVSETUP_COMPUTE_CAP": "9.0,9.0", "CUDA_VISIBLE_DEVICES": "0,0,1"}
    machine = detect(root=tmp_path, environ=environ)
    assert any("names '0', a device already listed" in warning for warning in machine.warnings)


def test_plan_counts_only_gpu_0() -> None:
    """GPU 1 (sm_35, no current wheel) is named after 7, so CUDA never shows it: no refusal."""
    plan = resolve(_machine("0,7,1"), Request(torch="2.5.1"))
    assert plan.variant.startswith("cu")
    notes = plan.reasons + plan.warnings
    assert any("ignores it and every entry after it ('7,1')" in note for note in notes)


def test_plugin_devices_and_worker_pins_follow_the_rule() -> None:
    machine = _machine("0,7,1")
    assert devices_from_machine(machine) == ("cpu", "cuda:0")
    assert worker_gpus(machine, {"CUDA_VISIBLE_DEVICES": "0,7,1"}) == (
        "CUDA_VISIBLE_DEVICES",
        ("0",),
    )
    assert worker_gpus(machine, {"CUDA_VISIBLE_DEVICES": ""}) == ("CUDA_VISIBLE_DEVICES", ())
