"""Resolver rules as functions, and properties that must hold over every cell of the matrices."""

from __future__ import annotations

import dataclasses
import shlex

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.specifiers import SpecifierSet

from envsetup.errors import EnvsetupError, UsageError
from envsetup.install.render import FORMATS, command_lines, render
from envsetup.matrices import load
from envsetup.model.machine import Gpu, Machine, MigDevice, Platform
from envsetup.model.plan import TORCH_FAMILY, Request
from envsetup.resolve import NoCompatibleBuild, resolve
from envsetup.resolve.request import parse_companions, parse_torch_spec
from envsetup.resolve.rules import driver_at_least, visible_gpus

MATRICES = load()


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        (None, ""),
        ("", ""),
        ("2.5.1", "==2.5.1"),
        ("2.5", "==2.5.*"),
        ("2.6.0rc1", "==2.6.0rc1"),
        (">=2.4,<2.6", "<2.6,>=2.4"),
        ("torch~=2.5.0", "~=2.5.0"),
        ("  ==2.5.1 ", "==2.5.1"),
    ],
)
def test_torch_spec(text: str | None, spec: str) -> None:
    assert str(parse_torch_spec(text)) == spec


@pytest.mark.parametrize(
    "text", ["2.5.1; rm -rf /", "torchvision==0.20", ">=>2", "latest", "2.5.1 $(x)"]
)
def test_bad_torch_spec_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError) as error:
        parse_torch_spec(text)
    assert error.value.exit_code == 2
    assert repr(text.strip()) in error.value.message


def test_companions() -> None:
    assert parse_companions(["torchvision", "TorchAudio>=2.5", " "]) == {
        "torchvision": SpecifierSet(),
        "torchaudio": SpecifierSet(">=2.5"),
    }
    assert parse_companions(["xformers", "fbgemm_gpu"]) == {
        "xformers": SpecifierSet(),
        "fbgemm-gpu": SpecifierSet(),
    }
    with pytest.raises(UsageError, match="envsetup pins only torchvision, torchaudio and the"):
        parse_companions(["numpy"])
    with pytest.raises(UsageError, match="not a valid PEP 440 requirement"):
        parse_companions(["torchvision>=>1"])


@pytest.mark.parametrize(
    ("driver", "floor", "ok"),
    [
        ("535.104.05", "525.60.13", True),
        ("525.60.13", "525.60.13", True),
        ("525.60.12", "525.60.13", False),
        ("580", "580.65.06", False),
        ("580.65.06", "580", True),
        ("1000.1", "580.65.06", True),  # numeric, not text: "1000" < "580" as strings
        ("99.0", "450.80.02", False),
    ],
)
def test_driver_comparison_is_numeric(driver: str, floor: str, ok: bool) -> None:
    assert driver_at_least(driver, floor) is ok


def _linux(**fields: object) -> Machine:
    return Machine(platform=Platform("linux", "x86_64", "3.11"), **fields)  # type: ignore[arg-type]


def test_visible_gpus_by_index_uuid_and_mig() -> None:
    gpus = (
        Gpu(index=0, uuid="GPU-aaaa-1111", compute_capability="7.0"),
        Gpu(
            index=1,
            uuid="GPU-bbbb-2222",
            compute_capability="9.0",
            mig_devices=(MigDevice(uuid="MIG-cccc"),),
        ),
        Gpu(index=2, vendor="amd", arch="gfx90a"),
    )
    assert visible_gpus(_linux(gpus=gpus)) == (gpus, ())
    chosen, notes = visible_gpus(_linux(gpus=gpus, visible_gpus=("GPU-bbbb",)))
    assert [gpu.index for gpu in chosen] == [1, 2]  # other vendors are not CUDA's to hide
    assert notes == (
        "CUDA_VISIBLE_DEVICES hides 1 of 2 NVIDIA GPU(s); only the visible ones count",
    )
    chosen, _ = visible_gpus(_linux(gpus=gpus, visible_gpus=("MIG-cccc",)))
    assert [gpu.index for gpu in chosen] == [1, 2]
    chosen, notes = visible_gpus(_linux(gpus=gpus, visible_gpus=("0", "7", "1")))
    assert [gpu.index for gpu in chosen] == [0, 2]  # CUDA stops at 7: GPU 1 is not visible
    assert notes[0] == (
        "CUDA_VISIBLE_DEVICES names GPU 7 but only 2 exist: CUDA ignores it and every entry "
        "after it ('7,1'); visible: 0"
    )


def test_bad_policy_channel_and_backend_are_usage_errors() -> None:
    machine = _linux()
    for request, message in (
        (Request(policy="loose"), "--policy 'loose'"),
        (Request(channel="beta"), "--channel 'beta'"),
        (Request(backend="gpu"), "--backend: unknown variant 'gpu'"),
        (Request(index_url_base="https://x.example/a b"), "contains whitespace"),
        (Request(find_links_base="ftp://x.example/"), "neither https:// nor file://"),
    ):
        with pytest.raises(UsageError, match=message.replace("(", r"\(")):
            resolve(machine, request)


def test_no_matching_release_says_what_is_known() -> None:
    with pytest.raises(NoCompatibleBuild) as error:
        resolve(_linux(), Request(torch="==9.9.9"))
    assert "no torch release matches ==9.9.9" in error.value.message
    assert "envsetup matrix" in (error.value.hint or "")


def test_forced_backend_no_release_has() -> None:
    with pytest.raises(NoCompatibleBuild, match="has a cu101 build"):
        resolve(_linux(), Request(backend="cu101"))


def test_installed_torchvision_is_kept_paired() -> None:
    plan = resolve(_linux(), Request(torch="2.5.1"), installed={"torchvision": "0.19.0+cpu"})
    assert plan.packages == ("torch==2.5.1+cpu", "torchvision==0.20.1+cpu")
    assert plan.replaces == "torchvision==0.19.0+cpu"


def test_pypi_build_installed_on_linux_is_replaced_by_the_index_build() -> None:
    plan = resolve(_linux(), Request(torch="2.5.1"), installed={"torch": "2.5.1"})
    assert plan.replaces == "torch==2.5.1"
    assert "--force-reinstall" in shlex.split(render(plan, "pip"))


def test_untagged_platforms_come_from_the_matrices() -> None:
    """torch.toml's [[untagged]] decides which pins drop the +variant label, not the code."""
    aarch64 = Machine(platform=Platform("linux", "aarch64", "3.11"))
    assert resolve(aarch64, Request(torch="2.5.1"), MATRICES).packages == ("torch==2.5.1",)
    tagged = dataclasses.replace(MATRICES, untagged_platforms=())
    assert resolve(aarch64, Request(torch="2.5.1"), tagged).packages == ("torch==2.5.1+cpu",)
    x86 = dataclasses.replace(MATRICES, untagged_platforms=("linux-x86_64",))
    plan = resolve(_linux(), Request(torch="2.5.1"), x86)
    assert plan.packages == ("torch==2.5.1",)
    assert "linux-x86_64 pins leave out the +variant tag" in " ".join(plan.reasons)


def test_resolve_loads_the_bundled_matrices_by_default() -> None:
    assert resolve(_linux(), Request(torch="2.5.1")) == resolve(
        _linux(), Request(torch="2.5.1"), MATRICES
    )


# --- properties over every cell ------------------------------------------------------------------


def _cells() -> list[tuple[str, str, str, str]]:
    cells = []
    for release in MATRICES.releases:
        for platform, variants in release.variants.items():
            for variant in variants:
                pythons = [
                    p for p in release.pythons(platform) if release.has_wheel(p, platform, variant)
                ]
                if pythons:
                    cells.append((str(release.version), platform, variant, pythons[-1]))
    return cells


CELLS = _cells()


def test_every_cell_is_covered() -> None:
    assert len(CELLS) > 250


@pytest.mark.parametrize(("torch", "platform", "variant", "python"), CELLS)
def test_every_cell_plans_exact_pins_through_index_url_only(
    torch: str, platform: str, variant: str, python: str
) -> None:
    """Security: no torch-family package ever goes through --extra-index-url, in any format."""
    os_name, _, arch = platform.partition("-")
    machine = Machine(platform=Platform(os_name, arch, python))
    release = MATRICES.release(torch)
    assert release is not None
    with_ = tuple(name for name in ("torchvision", "torchaudio") if getattr(release, name))
    plan = resolve(machine, Request(torch=torch, backend=variant, with_=with_))
    assert (plan.torch, plan.variant) == (torch, variant)
    names = [pin.partition("==")[0] for pin in plan.packages]
    assert names == ["torch", *with_] and set(names) <= set(TORCH_FAMILY)
    assert plan.packages[0] in (f"torch=={torch}", f"torch=={torch}+{variant}")
    assert all("==" in pin for pin in plan.packages)
    if plan.index_url is None:
        assert os_name != "linux"  # only macOS and Windows CPU builds come from PyPI
    else:
        assert plan.index_url == f"https://download.pytorch.org/whl/{variant}"
    for fmt in FORMATS:
        text = render(plan, fmt) + "\n".join(command_lines(plan, fmt))
        assert "extra-index" not in text and "extra_index" not in text
    argv = shlex.split(render(plan, "pip"))
    if plan.index_url is not None:
        assert argv[argv.index("--index-url") + 1] == plan.index_url


# --- properties over random machines --------------------------------------------------------------

CAPS = [
    "3.5",
    "3.7",
    "5.0",
    "6.1",
    "7.0",
    "7.5",
    "8.0",
    "8.6",
    "8.9",
    "9.0",
    "10.0",
    "11.0",
    "12.0",
]
DRIVERS = [
    None,
    "390.48",
    "470.82.01",
    "525.60.13",
    "535.104.05",
    "550.54.14",
    "570.124.06",
    "580.00",
]
DRIVERS += ["580.82.07", "595.45.04"]


@st.composite
def machines(draw: st.DrawFn) -> Machine:
    platform = draw(
        st.sampled_from(["linux-x86_64", "linux-aarch64", "windows-amd64", "macos-arm64"])
    )
    os_name, _, arch = platform.partition("-")
    nvidia = draw(st.lists(st.sampled_from([*CAPS, None]), max_size=3))
    amd = draw(
        st.lists(st.sampled_from(["gfx90a", "gfx1100", "gfx1151", "gfx1103", None]), max_size=1)
    )
    gpus = [Gpu(index=i, compute_capability=cc) for i, cc in enumerate(nvidia)]
    gpus += [Gpu(index=len(gpus) + i, vendor="amd", arch=gfx) for i, gfx in enumerate(amd)]
    return Machine(
        platform=Platform(
            os_name, arch, draw(st.sampled_from(["3.8", "3.9", "3.11", "3.13t", "3.14"]))
        ),
        driver_version=draw(st.sampled_from(DRIVERS)),
        cuda_version=draw(st.sampled_from([None, "11.4", "12.2", "12.8", "13.0"])),
        gpus=tuple(gpus),
        visible_gpus=draw(st.sampled_from([None, (), ("0",), ("1", "0")])),
        xpu=draw(st.booleans()),
    )


requests = st.builds(
    Request,
    torch=st.sampled_from([None, "2.5.1", "<2.6", ">=2.9", "2.15.0", "1.12"]),
    with_=st.sampled_from([(), ("torchvision",), ("torchvision", "torchaudio")]),
    backend=st.sampled_from(["auto", "cpu", "cuda", "rocm", "cu118", "cu126", "cu130", "xpu"]),
    policy=st.sampled_from(["compat", "strict"]),
    channel=st.sampled_from(["stable", "stable", "nightly"]),
)


@settings(max_examples=300, deadline=None)
@given(machines(), requests)
def test_any_machine_gets_a_rule_abiding_plan_or_a_clear_error(
    machine: Machine, request: Request
) -> None:
    try:
        plan = resolve(machine, request, MATRICES)
    except EnvsetupError as error:
        assert error.message and error.exit_code == 1
        return
    assert plan.reasons and plan.packages[0].startswith("torch")
    if plan.channel != "stable" or not plan.variant.startswith("cu"):
        return
    cuda = (int(plan.variant[2:-1]), int(plan.variant[-1]))
    visible, _ = visible_gpus(machine)
    for gpu in visible:
        archs = MATRICES.arch_list(plan.torch, plan.variant, plan.platform)
        if gpu.vendor == "nvidia" and gpu.compute_capability and archs is not None:
            assert archs.covers(gpu.compute_capability), (gpu, plan)
    limit = machine.cuda_version
    if limit is None and machine.driver_version:
        limit = MATRICES.max_cuda_for_driver(machine.driver_version, machine.platform.os)
    native = limit is not None and cuda <= tuple(int(p) for p in limit.split("."))
    if request.policy == "strict" and limit is not None:
        assert native, plan
    if machine.driver_version and not native:
        floor = MATRICES.minor_compat_floor(cuda[0], machine.platform.os)
        assert floor is not None and driver_at_least(machine.driver_version, floor), plan
