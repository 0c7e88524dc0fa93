"""Cells: every published (python, torch, variant) and nothing else, filters, ids, hardware."""

from __future__ import annotations

from dataclasses import replace

import pytest
from packaging.version import Version

from envsetup.errors import UsageError
from envsetup.integrations.cells import Cell, cells, missing_hardware, newest_count
from envsetup.matrices import Matrices, load
from envsetup.model.machine import Gpu, Machine, Platform

LINUX = "linux-x86_64"


@pytest.fixture(scope="module")
def matrices() -> Matrices:
    return load()


def _published(matrices: Matrices, platform: str) -> set[tuple[str, str, str]]:
    return {
        (py, release.torch, variant)
        for release in matrices.releases
        for py in release.pythons(platform)
        for variant in release.variants.get(platform, ())
        if release.has_wheel(py, platform, variant)
    }


@pytest.mark.parametrize("platform", [LINUX, "windows-amd64", "macos-arm64", "linux-aarch64"])
def test_cells_are_exactly_the_published_wheels(matrices: Matrices, platform: str) -> None:
    found = cells(matrices, platform=platform)
    keys = [(cell.python, cell.torch, cell.variant) for cell in found]
    assert len(keys) == len(set(keys)), "duplicate cells"
    assert set(keys) == _published(matrices, platform)
    assert all(cell.platform == platform for cell in found)
    for cell in found:
        release = matrices.release(cell.torch)
        assert release is not None and release.has_wheel(cell.python, platform, cell.variant)


def test_impossible_combinations_are_never_generated(matrices: Matrices) -> None:
    # torch 1.12 predates Python 3.11 wheels and CUDA 13; Linux aarch64 has no ROCm builds
    assert not [c for c in cells(matrices, torch="1.12.0") if c.python == "3.11"]
    assert not cells(matrices, torch="1.12.0", variants="cu130")
    assert not cells(matrices, platform="linux-aarch64", variants="rocm")
    # torch 2.6 published Python 3.13 wheels, but no ROCm build of them
    assert cells(matrices, torch="2.6.0", python="3.13", variants="cpu")
    assert not cells(matrices, torch="2.6.0", python="3.13", variants="rocm")


def test_newest_first_then_python_then_variant_order(matrices: Matrices) -> None:
    found = cells(matrices)
    versions = [Version(cell.torch) for cell in found]
    assert versions == sorted(versions, reverse=True)


def test_torch_filter_accepts_versions_minor_series_and_specifiers(matrices: Matrices) -> None:
    assert {c.torch for c in cells(matrices, torch="2.5.1")} == {"2.5.1"}
    assert {c.torch for c in cells(matrices, torch="2.5")} == {
        r.torch for r in matrices.releases if r.torch.startswith("2.5.")
    }
    spec = {c.torch for c in cells(matrices, torch=">=2.4,<2.6")}
    assert spec == {
        r.torch for r in matrices.releases if Version("2.4") <= r.version < Version("2.6")
    }


def test_python_and_variant_filters_take_lists_strings_and_kinds(matrices: Matrices) -> None:
    both = cells(matrices, python=["3.11", "3.12"])
    assert {c.python for c in both} == {"3.11", "3.12"}
    assert cells(matrices, python="3.11,3.12") == both
    cuda = cells(matrices, variants="cuda")
    assert cuda and all(c.variant.startswith("cu") for c in cuda)
    spelled = cells(matrices, variants=["cuda12.1"], torch="2.5.1")
    assert spelled and {c.variant for c in spelled} == {"cu121"}
    mixed = cells(matrices, variants="cpu,rocm", torch="2.5.1")
    assert {c.tag for c in mixed} == {"cpu", "rocm"}


def test_newest_keeps_the_n_newest_releases_that_still_have_cells(matrices: Matrices) -> None:
    newest = sorted(matrices.releases, key=lambda r: r.version, reverse=True)
    assert {c.torch for c in cells(matrices, newest=2)} == {r.torch for r in newest[:2]}
    # counted after the other filters: releases without Python 3.9 wheels do not use up N
    with_39 = [r.torch for r in newest if "3.9" in r.pythons(LINUX)][:3]
    assert {c.torch for c in cells(matrices, python="3.9", newest=3)} == set(with_39)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"torch": "two point five"}, "not a valid PEP 440"),
        ({"newest": 0}, "positive number"),
        ({"variants": "cu12x"}, "unknown variant"),
    ],
)
def test_bad_filters_are_usage_errors(matrices: Matrices, kwargs: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        cells(matrices, **kwargs)
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(
    ("variant", "tag", "runner", "hardware"),
    [
        ("cpu", "cpu", "cpu", "no accelerator"),
        ("cu121", "cuda", "gpu", "an NVIDIA GPU"),
        ("rocm6.2.4", "rocm", "gpu", "an AMD GPU"),
        ("xpu", "xpu", "gpu", "an Intel GPU"),
    ],
)
def test_tags_runner_and_hardware(variant: str, tag: str, runner: str, hardware: str) -> None:
    cell = Cell(python="3.11", torch="2.5.1", variant=variant)
    assert (cell.tag, cell.runner, cell.hardware) == (tag, runner, hardware)
    assert cell.session() == f"verify(python='3.11', torch='2.5.1', variant='{variant}')"
    assert cell.to_json()["session"] == cell.session()


CPU_BOX = Machine(platform=Platform(os="linux", arch="x86_64", python="3.12"))


def _gpu_box(driver: str, capability: str) -> Machine:
    gpu = Gpu(index=0, name="GPU", compute_capability=capability)
    return replace(CPU_BOX, driver_version=driver, gpus=(gpu,))


def test_cpu_cells_run_anywhere_on_their_platform(matrices: Matrices) -> None:
    assert missing_hardware(Cell("3.11", "2.5.1", "cpu"), CPU_BOX, matrices) is None
    mac = replace(CPU_BOX, platform=Platform(os="macos", arch="arm64", python="3.11"))
    reason = missing_hardware(Cell("3.11", "2.5.1", "cpu"), mac, matrices)
    assert reason is not None and "is for linux-x86_64; this machine is macos-arm64" in reason


@pytest.mark.parametrize(
    ("variant", "needs"),
    [("cu121", "an NVIDIA GPU"), ("rocm6.2", "an AMD GPU"), ("xpu", "an Intel GPU")],
)
def test_gpu_cells_need_their_accelerator(matrices: Matrices, variant: str, needs: str) -> None:
    reason = missing_hardware(Cell("3.11", "2.5.1", variant), CPU_BOX, matrices)
    assert reason == (
        f"verify(python='3.11', torch='2.5.1', variant='{variant}') needs {needs}; "
        f"no {needs.split(' ', 1)[1]} was detected on this machine"
    )


def test_driver_and_architecture_gaps_come_from_the_resolver(matrices: Matrices) -> None:
    ampere_old_driver = _gpu_box("470.82.01", "8.6")  # a CUDA 11.4 driver: no CUDA 12 wheels
    reason = missing_hardware(Cell("3.11", "2.5.1", "cu121"), ampere_old_driver, matrices)
    assert reason is not None and "cannot run on this machine" in reason
    assert "driver" in reason
    fine = _gpu_box("550.54.15", "8.6")
    assert missing_hardware(Cell("3.11", "2.5.1", "cu121"), fine, matrices) is None
    blackwell = _gpu_box("575.51.03", "12.0")  # sm_120 is not in torch 2.5.1's cu121 wheels
    reason = missing_hardware(Cell("3.11", "2.5.1", "cu121"), blackwell, matrices)
    assert reason is not None and "sm_120" in reason


@pytest.mark.parametrize(
    ("value", "name", "message"),
    [
        (0, "newest", "newest='0': expected a positive number of releases"),
        ("latest", "ENVSETUP_NEWEST", "ENVSETUP_NEWEST='latest': expected a positive number"),
        (-3, "--newest", "--newest='-3': expected a positive number of releases"),
        (True, "newest", "newest='True'"),
    ],
)
def test_newest_count_has_one_message_for_every_spelling(
    value: object, name: str, message: str
) -> None:
    with pytest.raises(UsageError) as caught:
        newest_count(value, name)  # type: ignore[arg-type]
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(("value", "count"), [(None, None), ("", None), (" 2 ", 2), (3, 3)])
def test_newest_count_reads_a_count_or_nothing(value: int | str | None, count: int | None) -> None:
    assert newest_count(value) == count
