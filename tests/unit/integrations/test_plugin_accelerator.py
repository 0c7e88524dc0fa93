"""The plugin's decisions as plain functions: marker conditions, devices, settings, pinning."""

from __future__ import annotations

import pytest

from envsetup.integrations import pytest_devices as acc
from envsetup.integrations.pytest_options import Settings, load_settings, parse_device_setting
from envsetup.model.capability import ComputeCapability
from envsetup.model.machine import Gpu, Machine, MigDevice, Platform

LINUX = Platform("linux", "x86_64", "3.11", "glibc 2.36")
H100 = Gpu(0, "NVIDIA H100 80GB HBM3", 81559, "9.0", uuid="GPU-bcfee904")
H100_MACHINE = Machine(LINUX, driver_version="580.159.04", cuda_version="13.0", gpus=(H100,))
GIB = 2**30


def cuda_view(
    *specs: tuple[str, float, tuple[int, int]], cuda: str = "13.0", archs=()
) -> acc.TorchView:
    devices = tuple(
        acc.TorchDevice(i, name, int(gib * GIB), ComputeCapability(*cc))
        for i, (name, gib, cc) in enumerate(specs)
    )
    return acc.TorchView(
        f"2.13.0+cu{cuda.replace('.', '')}", cuda=cuda, devices=devices, arch_list=archs
    )


ONE_H100 = cuda_view(("NVIDIA H100 80GB HBM3", 79.6, (9, 0)))
ONE_T4 = cuda_view(("Tesla T4", 15, (7, 5)), cuda="11.8")
CPU_TORCH = acc.TorchView("2.13.0+cpu")


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("20GiB", 20 * GIB),
        ("20 GiB", 20 * GIB),
        ("16GB", 16 * 10**9),
        ("512MiB", 512 * 2**20),
        ("1.5gib", int(1.5 * GIB)),
        (1024, 1024),
    ],
)
def test_memory_sizes_parse_in_binary_and_decimal_units(text, size):
    assert acc.parse_memory(text) == size


@pytest.mark.parametrize("text", ["lots", "20 GiBs", "-1GiB", "0GiB", 0, True, None])
def test_bad_memory_sizes_say_what_was_expected(text):
    with pytest.raises(ValueError, match=r"expected e\.g\. '20GiB'|more than zero"):
        acc.parse_memory(text)


def test_marker_arguments_become_a_requirement():
    requirement = acc.requirement_from_marker(
        (),
        {
            "count": 2,
            "min_memory": "20GiB",
            "min_capability": "8.0",
            "min_cuda": 12.1,
            "backend": "cuda",
        },
    )
    assert requirement == acc.GpuRequirement(2, 20 * GIB, ComputeCapability(8, 0), (12, 1), "cuda")
    assert acc.requirement_from_marker((3,), {}).count == 3
    assert acc.requirement_from_marker((), {}) == acc.GpuRequirement()


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((), {"count": 0}, "count=0 must be a positive integer"),
        ((), {"count": "2"}, "count='2' must be a positive integer"),
        ((1, 2), {}, "at most one positional argument"),
        ((), {"min_mem": "1GiB"}, "unknown argument 'min_mem'; expected count, min_memory"),
        ((), {"backend": "tpu"}, "backend='tpu'; expected one of cuda, rocm, mps"),
        ((), {"min_capability": "eight"}, "min_capability='eight' is not a version"),
        ((), {"min_cuda": "12.x"}, "min_cuda='12.x' is not a version"),
    ],
)
def test_invalid_marker_arguments_are_named(args, kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        acc.requirement_from_marker(args, kwargs)


def test_unmet_lists_only_what_is_missing():
    view = cuda_view(("NVIDIA H100 80GB HBM3", 79.6, (9, 0)))
    requirement = acc.GpuRequirement(
        count=2, min_memory=40 * GIB, min_capability=ComputeCapability(8, 0)
    )
    assert acc.unmet(requirement, view) == ["needs 2 GPUs, 1 visible"]
    assert acc.unmet(acc.GpuRequirement(), view) == []


@pytest.mark.parametrize(
    ("requirement", "view", "reasons"),
    [
        (
            acc.GpuRequirement(min_memory=20 * GIB),
            ONE_T4,
            ["needs 20 GiB GPU memory, cuda:0 (Tesla T4) has 15 GiB"],
        ),
        (
            acc.GpuRequirement(min_capability=ComputeCapability(8, 0)),
            ONE_T4,
            ["needs compute capability 8.0, cuda:0 (Tesla T4) is 7.5"],
        ),
        (
            acc.GpuRequirement(min_cuda=(12, 1)),
            ONE_T4,
            ["needs CUDA 12.1, torch 2.13.0+cu118 is a CUDA 11.8 build"],
        ),
        (
            acc.GpuRequirement(
                min_memory=20 * GIB, min_capability=ComputeCapability(8, 0), min_cuda=(12, 1)
            ),
            ONE_T4,
            [
                "needs 20 GiB GPU memory, cuda:0 (Tesla T4) has 15 GiB",
                "needs compute capability 8.0, cuda:0 (Tesla T4) is 7.5",
                "needs CUDA 12.1, torch 2.13.0+cu118 is a CUDA 11.8 build",
            ],
        ),
        (acc.GpuRequirement(backend="rocm"), ONE_H100, ["needs a ROCm device, torch can use CUDA"]),
        (acc.GpuRequirement(backend="mps"), ONE_H100, ["needs a MPS device, torch can use CUDA"]),
        (
            acc.GpuRequirement(count=2, min_capability=ComputeCapability(8, 0)),
            acc.TorchView("2.13.0", mps=True),
            [
                "needs 2 GPUs, MPS is one device",
                "min_capability applies to CUDA/ROCm GPUs, torch uses MPS",
            ],
        ),
        (
            acc.GpuRequirement(),
            cuda_view(
                ("NVIDIA GeForce RTX 5090", 32, (12, 0)), cuda="11.8", archs=("sm_80", "sm_90")
            ),
            [
                "torch 2.13.0+cu118 has no kernels for sm_120 (NVIDIA GeForce RTX 5090); "
                "its wheels hold sm_80, sm_90"
            ],
        ),
    ],
    ids=["memory", "capability", "cuda", "all-three", "rocm", "mps", "on-mps", "arch"],
)
def test_unmet_reasons(requirement, view, reasons):
    assert acc.unmet(requirement, view) == reasons


@pytest.mark.parametrize(
    ("archs", "capability", "runs"),
    [
        (("sm_80", "sm_90"), (9, 0), True),
        (("sm_80",), (8, 6), True),  # SASS for 8.0 runs on 8.6
        (("sm_86",), (8, 0), False),
        (("sm_80", "compute_80"), (9, 0), True),  # PTX is JIT-compiled on newer GPUs
        (("sm_90",), (12, 0), False),
    ],
)
def test_arch_list_coverage_follows_the_sass_and_ptx_rules(archs, capability, runs):
    view = cuda_view(("GPU", 10, capability), archs=archs)
    assert (acc.unmet(acc.GpuRequirement(), view) == []) is runs


def test_rocm_builds_use_the_cuda_device_type():
    view = acc.TorchView("2.5.1+rocm6.2", hip="6.2", devices=ONE_H100.devices)
    assert view.backend == "rocm"
    assert view.build == "ROCm 6.2 build"
    assert acc.accelerator_device(view) == "cuda:0"
    assert acc.unmet(acc.GpuRequirement(backend="rocm"), view) == []


@pytest.mark.parametrize(
    ("name", "view", "result"),
    [
        ("cpu", CPU_TORCH, "cpu"),
        ("cuda", ONE_H100, "cuda:0"),
        ("cuda:0", ONE_H100, "cuda:0"),
        ("mps", acc.TorchView("2.13.0", mps=True), "mps"),
    ],
)
def test_check_device_makes_a_device_concrete(name, view, result):
    assert acc.check_device(name, view) == result


@pytest.mark.parametrize(
    ("name", "view", "message"),
    [
        ("cuda:1", ONE_H100, "cuda:1 was asked for, but torch sees 1 CUDA device"),
        ("cuda", CPU_TORCH, "cuda was asked for, but torch sees 0 CUDA device"),
        ("mps", ONE_H100, "mps was asked for, but torch cannot use MPS here"),
    ],
)
def test_check_device_refuses_what_torch_cannot_use(name, view, message):
    with pytest.raises(acc.DeviceUnavailable, match=message):
        acc.check_device(name, view)


def test_accelerator_device_prefers_gpus_then_mps_else_none():
    assert acc.accelerator_device(ONE_H100) == "cuda:0"
    assert acc.accelerator_device(acc.TorchView("2.13.0", mps=True)) == "mps"
    assert acc.accelerator_device(CPU_TORCH) is None


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("auto", ("auto",)),
        (" all ", ("all",)),
        ("cuda:1", ("cuda:1",)),
        ("cpu, cuda:0", ("cpu", "cuda:0")),
        ("mps", ("mps",)),
    ],
)
def test_device_settings(value, parsed):
    assert parse_device_setting(value, "--envsetup-device") == parsed


@pytest.mark.parametrize("value", ["gpu", "cuda:x", "cuda0", "", "cpu,tpu", "all,cpu"])
def test_bad_device_settings_name_their_source(value):
    with pytest.raises(
        ValueError, match=r"invalid device .* \(from ENVSETUP_DEVICE\); expected auto"
    ):
        parse_device_setting(value, "ENVSETUP_DEVICE")


def settings(cli=(None, None), env=None, ini=(None, None)) -> Settings:
    return load_settings(
        cli_device=cli[0], cli_gpu=cli[1], environ=env or {}, ini_device=ini[0], ini_gpu=ini[1]
    )


def test_settings_default_to_auto():
    assert settings() == Settings(("auto",), "default", "auto", "default")


def test_settings_precedence_is_cli_then_env_then_ini():
    env = {"ENVSETUP_DEVICE": "cuda:1", "ENVSETUP_GPU": "skip"}
    ini = ("mps", "only")
    assert settings(("cpu", "require"), env, ini) == Settings(
        ("cpu",), "--envsetup-device", "require", "--envsetup-gpu"
    )
    assert settings((None, None), env, ini) == Settings(
        ("cuda:1",), "ENVSETUP_DEVICE", "skip", "ENVSETUP_GPU"
    )
    assert settings((None, None), {}, ini) == Settings(
        ("mps",), "ini envsetup_device", "only", "ini envsetup_gpu"
    )
    assert settings((None, None), {"ENVSETUP_GPU": ""}, ini).gpu_source == "ini envsetup_gpu"


@pytest.mark.parametrize(
    ("cli", "env", "ini", "source"),
    [
        ((None, "maybe"), {}, (None, None), "--envsetup-gpu"),
        ((None, None), {}, (None, "maybe"), "ini envsetup_gpu"),
    ],
)
def test_bad_gpu_mode_names_its_source(cli, env, ini, source):
    expected = (
        rf"invalid gpu mode 'maybe' \(from {source}\); expected one of auto, require, skip, only"
    )
    with pytest.raises(ValueError, match=expected):
        settings(cli, env, ini)


def test_a_bad_environment_value_is_held_back_and_the_next_source_applies():
    """ENVSETUP_* may be exported for another project: not an error until envsetup is used."""
    loaded = settings(
        (None, None), {"ENVSETUP_GPU": "maybe", "ENVSETUP_DEVICE": "tpu"}, ("cpu", None)
    )
    assert (loaded.device, loaded.device_source, loaded.gpu) == (
        ("cpu",),
        "ini envsetup_device",
        "auto",
    )
    assert loaded.env_problem == (
        "invalid device 'tpu' (from ENVSETUP_DEVICE); expected auto, all, cpu, cuda, cuda:N, mps "
        "or a comma-separated list such as 'cpu,cuda:0'; invalid gpu mode 'maybe' (from "
        "ENVSETUP_GPU); expected one of auto, require, skip, only"
    )


def two_gpus(**extra) -> Machine:
    gpus = (H100, Gpu(1, "NVIDIA H100 80GB HBM3", 81559, "9.0", uuid="GPU-2"))
    return Machine(LINUX, driver_version="580.159.04", cuda_version="13.0", gpus=gpus, **extra)


@pytest.mark.parametrize(
    ("environ", "entries"),
    [
        ({}, ("0", "1")),
        ({"CUDA_VISIBLE_DEVICES": "1"}, ("1",)),
        ({"CUDA_VISIBLE_DEVICES": "1,0"}, ("1", "0")),
        ({"CUDA_VISIBLE_DEVICES": "0,7,1"}, ("0",)),  # CUDA stops at 7: never hand 7 or 1 out
        ({"CUDA_VISIBLE_DEVICES": "GPU-bcfee904,GPU-2"}, ("GPU-bcfee904", "GPU-2")),
        ({"CUDA_VISIBLE_DEVICES": "MIG-aaaa, 1"}, ()),  # no such MIG instance here
        ({"CUDA_VISIBLE_DEVICES": "0,-1,1"}, ("0",)),
        ({"CUDA_VISIBLE_DEVICES": ""}, ()),
        ({"CUDA_VISIBLE_DEVICES": "-1"}, ()),
    ],
    ids=[
        "all",
        "one",
        "order-kept",
        "stops-at-7",
        "uuids",
        "unknown-mig",
        "stops-at-invalid",
        "empty",
        "minus-one",
    ],
)
def test_worker_gpus_index_into_the_callers_list(environ, entries):
    assert acc.worker_gpus(two_gpus(), environ) == ("CUDA_VISIBLE_DEVICES", entries)


def test_worker_gpus_hand_out_mig_instances_of_a_mig_gpu():
    migs = (MigDevice(0, uuid="MIG-aaaa"), MigDevice(1, uuid="MIG-bbbb"))
    gpu = Gpu(0, "NVIDIA A100-SXM4-80GB", mig_enabled=True, mig_devices=migs)
    machine = Machine(LINUX, gpus=(gpu, Gpu(1, "NVIDIA A100-SXM4-80GB")))
    assert acc.worker_gpus(machine, {})[1] == ("MIG-aaaa", "MIG-bbbb", "1")


def test_worker_gpus_on_amd_use_hip_visible_devices():
    machine = Machine(LINUX, gpus=(Gpu(0, "AMD Instinct MI300X", vendor="amd", arch="gfx942"),))
    assert acc.worker_gpus(machine, {"CUDA_VISIBLE_DEVICES": "5"}) == (
        "HIP_VISIBLE_DEVICES",
        ("0",),
    )
    assert acc.worker_gpus(machine, {"HIP_VISIBLE_DEVICES": "0"}) == ("HIP_VISIBLE_DEVICES", ("0",))
    assert acc.worker_gpus(machine, {"HIP_VISIBLE_DEVICES": "2,0"}) == ("HIP_VISIBLE_DEVICES", ())


def test_devices_for_all_come_from_probes_and_respect_visibility():
    assert acc.devices_from_machine(two_gpus()) == ("cpu", "cuda:0", "cuda:1")
    assert acc.devices_from_machine(two_gpus(visible_gpus=("1",))) == ("cpu", "cuda:0")
    assert acc.devices_from_machine(two_gpus(visible_gpus=())) == ("cpu",)
    assert acc.devices_from_machine(Machine(Platform("macos", "arm64", "3.12"), mps=True)) == (
        "cpu",
        "mps",
    )


@pytest.mark.parametrize(
    ("version", "build"),
    [
        (None, "not installed"),
        ("2.13.0+cpu", "CPU-only build"),
        ("2.13.0+cu130", "CUDA 13.0 build"),
        ("2.5.1+cu118", "CUDA 11.8 build"),
        ("2.5.1+rocm6.2", "ROCm 6.2 build"),
        ("2.5.1+rocm6.2.4", "ROCm 6.2.4 build"),
        ("2.7.0+xpu", "XPU build"),
        ("2.9.0+git1234", "git1234 build"),
        ("2.5.1", "PyPI build"),
    ],
)
def test_torch_build_is_read_from_the_version_alone(version, build):
    assert acc.torch_dist_build(version) == build


@pytest.mark.parametrize(
    ("requires", "build"),
    [
        (
            ['nvidia-cuda-runtime-cu12==12.4.127; platform_system == "Linux"'],
            "CUDA 12.4 build from PyPI",
        ),
        (
            ["filelock", 'nvidia-cuda-runtime==13.0.96; platform_system == "Linux"'],
            "CUDA 13.0 build from PyPI",
        ),
        (["nvidia-cuda-runtime-cu11 (==11.7.99)"], "CUDA 11.7 build from PyPI"),
        (
            ['cuda-toolkit[cublas,cudart,cufft]==13.0.2; platform_system == "Linux"'],
            "CUDA 13.0 build from PyPI",
        ),
        (["cuda-toolkit[cublas]==13.0.2"], "PyPI build"),
        (["filelock", "sympy>=1.13.3"], "PyPI build"),
    ],
)
def test_pypi_torch_build_is_read_from_its_cuda_dependency(requires, build):
    assert acc.torch_dist_build("2.11.0", requires) == build
    assert acc.torch_dist_build("2.11.0+cu126", requires) == "CUDA 12.6 build"


def test_expected_device_follows_build_and_hardware():
    assert acc.expected_device(H100_MACHINE, "CUDA 13.0 build") == "cuda:0"
    assert acc.expected_device(H100_MACHINE, "CPU-only build") == "cpu"
    assert acc.expected_device(Machine(LINUX), "CUDA 13.0 build") == "cpu"
    assert (
        acc.expected_device(Machine(Platform("macos", "arm64", "3.12"), mps=True), "PyPI build")
        == "mps"
    )


def test_gpu_summary_groups_identical_names():
    machine = Machine(LINUX, gpus=(H100, H100, Gpu(2, "Tesla T4")))
    assert acc.describe_gpus(machine) == "2x NVIDIA H100 80GB HBM3, Tesla T4"
    assert acc.driver_summary(H100_MACHINE) == "driver 580.159.04, CUDA ≤ 13.0"


@pytest.mark.parametrize(
    ("view", "machine", "cause"),
    [
        (CPU_TORCH, H100_MACHINE, "but torch 2.13.0+cpu is a CPU-only build"),
        (
            acc.TorchView(None, problem="import torch failed: No module named 'torch'"),
            H100_MACHINE,
            "but import torch failed: No module named 'torch'",
        ),
        (
            acc.TorchView("2.13.0+cu130", cuda="13.0"),
            Machine(LINUX, driver_version="535.104.05", cuda_version="12.2", gpus=(H100,)),
            "but torch 2.13.0+cu130 is built for CUDA 13.0, newer than the driver supports",
        ),
        (
            acc.TorchView("2.13.0+cu130", cuda="13.0"),
            Machine(LINUX, cuda_version="13.0", gpus=(H100,), visible_gpus=()),
            "but CUDA_VISIBLE_DEVICES hides every GPU from torch 2.13.0+cu130 — fix: unset it or "
            "list a GPU in it",
        ),
        (
            acc.TorchView("2.5.1+rocm6.2", hip="6.2"),
            H100_MACHINE,
            "but torch 2.5.1+rocm6.2 is a ROCm build, these GPUs need a CUDA build",
        ),
        (
            acc.TorchView("2.13.0+cu130", cuda="13.0"),
            H100_MACHINE,
            "but torch 2.13.0+cu130 (CUDA 13.0 build) cannot use it",
        ),
    ],
    ids=["cpu-build", "missing", "driver-too-old", "hidden", "rocm-on-nvidia", "other"],
)
def test_why_unusable_names_the_cause(view, machine, cause):
    asked: list[bool] = []
    reason = acc.why_unusable(view, machine, fix=lambda: asked.append(True))
    assert reason.startswith("NVIDIA H100 80GB HBM3 present")
    assert reason.endswith(cause)
    assert asked == ([] if cause.endswith(("list a GPU in it", "cannot use it")) else [True])


def test_why_unusable_appends_the_fix_and_says_when_no_gpu_exists():
    reason = acc.why_unusable(CPU_TORCH, H100_MACHINE, lambda: "pip install torch==2.13.0+cu130")
    assert reason == (
        "NVIDIA H100 80GB HBM3 present (driver 580.159.04, CUDA ≤ 13.0), but torch 2.13.0+cpu is a "
        "CPU-only build — fix: pip install torch==2.13.0+cu130"
    )
    assert acc.why_unusable(CPU_TORCH, Machine(LINUX), lambda: None) == (
        "no usable GPU: none was detected (torch 2.13.0+cpu (CPU-only build) sees none)"
    )
    # torch missing on a machine without GPU: no "present, but" with an empty GPU name
    missing = acc.TorchView(version=None, problem="import torch failed: No module named 'torch'")
    assert acc.why_unusable(missing, Machine(LINUX), lambda: None) == (
        "no usable GPU: none was detected (import torch failed: No module named 'torch')"
    )


def test_fix_command_is_the_planners_install_command():
    command = acc.fix_command(H100_MACHINE, "2.13.0+cpu")
    assert command is not None
    assert "-m pip install --index-url https://download.pytorch.org/whl/cu130" in command
    assert "torch==2.13.0+cu130" in command


def test_gpu_modes_are_the_typed_modes_and_parse_to_them() -> None:
    from typing import get_args

    from envsetup.integrations.pytest_options import GPU_MODES, GpuMode

    assert GPU_MODES == get_args(GpuMode) == ("auto", "require", "skip", "only")
    for mode in GPU_MODES:
        settings = load_settings(
            cli_device=None, cli_gpu=mode, environ={}, ini_device=None, ini_gpu=None
        )
        assert settings.gpu == mode
    with pytest.raises(ValueError, match="invalid gpu mode 'ignore'"):
        load_settings(cli_device=None, cli_gpu="ignore", environ={}, ini_device=None, ini_gpu=None)
