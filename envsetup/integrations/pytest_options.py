"""The pytest plugin's settings — `device`, `gpu` and xdist pinning — on one precedence ladder.

Command line (`--envsetup-device`, `--envsetup-gpu`) > environment (ENVSETUP_DEVICE,
ENVSETUP_GPU) > ini (`envsetup_device`, `envsetup_gpu`) > default "auto", in the way
pytest-timeout resolves its timeout. Every name carries `envsetup`, because the plugin loads in
every project of an environment and plain `--device` / `--gpu` belong to many of them.

The environment is shared by every project a CI machine runs, so a value from it is only a
default for tests that use envsetup's own `device` fixture or `gpu` marker; a malformed one is
kept as a problem and reported only if such a test exists, never in someone else's suite. A bad
value names the place it came from, because "invalid value" alone sends users hunting through
CI files, tox.ini and pyproject.toml.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, TypeVar, get_args

from envsetup import settings

T = TypeVar("T")

_DEVICE = re.compile(r"^(cpu|mps|cuda(:\d+)?)$")

#: What envsetup's gpu-marked tests do: see GPU_HELP.
GpuMode = Literal["auto", "require", "skip", "only"]
GPU_MODES: tuple[GpuMode, ...] = get_args(GpuMode)

DEVICE_OPTION, GPU_OPTION, PIN_OPTION = "--envsetup-device", "--envsetup-gpu", "--envsetup-pin-gpus"
DEVICE_ENV, GPU_ENV = "ENVSETUP_DEVICE", "ENVSETUP_GPU"
DEVICE_INI, GPU_INI, PIN_INI = "envsetup_device", "envsetup_gpu", "envsetup_pin_gpus"

DEVICE_HELP = (
    "device for envsetup's `device` fixture: auto (accelerator if torch can use one, else cpu), "
    "cpu, cuda, cuda:N, mps, a list 'cpu,cuda:0', or all (each test once per detected device). "
    f"Env {DEVICE_ENV}, ini {DEVICE_INI}."
)
GPU_HELP = (
    "envsetup's gpu-marked tests: auto (skip without a usable GPU), require (fail when torch "
    "cannot use the GPU: for GPU CI), skip (skip them), only (deselect every other test). "
    f"Env {GPU_ENV}, ini {GPU_INI}."
)
PIN_HELP = (
    "give each pytest-xdist worker one GPU of its own (CUDA_VISIBLE_DEVICES); off by default "
    f"because multi-GPU tests need them all. Ini {PIN_INI}."
)

#: Sources that are this suite's own configuration, not the shared environment or the default.
SUITE_SOURCES = (GPU_OPTION, f"ini {GPU_INI}", DEVICE_OPTION, f"ini {DEVICE_INI}")


def parse_device_setting(value: str, source: str) -> tuple[str, ...]:
    """("auto",), ("all",) or concrete devices ("cpu", "cuda:0", ...) from the device setting."""
    value = value.strip()
    if value in ("auto", "all"):
        return (value,)
    devices = tuple(part.strip() for part in value.split(",") if part.strip())
    bad = [d for d in devices if not _DEVICE.match(d)]
    if not devices or bad:
        raise ValueError(
            f"invalid device {value!r} (from {source}); expected auto, all, cpu, cuda, cuda:N, mps "
            "or a comma-separated list such as 'cpu,cuda:0'"
        )
    return devices


def _parse_gpu(value: str, source: str) -> GpuMode:
    for mode in GPU_MODES:
        if value == mode:
            return mode
    raise ValueError(
        f"invalid gpu mode {value!r} (from {source}); expected one of {', '.join(GPU_MODES)}"
    )


@dataclass(frozen=True)
class Settings:
    """Effective settings, where each came from, and a bad environment value held back."""

    device: tuple[str, ...] = ("auto",)
    device_source: str = "default"
    gpu: GpuMode = "auto"
    gpu_source: str = "default"
    pin_gpus: bool = False
    env_problem: str | None = None

    @property
    def device_label(self) -> str:
        return ",".join(self.device)

    @property
    def owns_gpu_marker(self) -> bool:
        """The suite itself configured gpu tests, so a `gpu` marker here is envsetup's."""
        return self.gpu_source in SUITE_SOURCES


def load_settings(
    *,
    cli_device: str | None,
    cli_gpu: str | None,
    environ: Mapping[str, str],
    ini_device: str | None,
    ini_gpu: str | None,
    pin_gpus: bool = False,
) -> Settings:
    """Resolve the settings. ValueError for a bad command-line or ini value (the suite's own);
    a bad environment value is skipped and kept in `env_problem`."""
    problems: list[str] = []
    device, device_source = _resolve(
        (cli_device, settings.get(DEVICE_ENV, environ), ini_device),
        (DEVICE_OPTION, DEVICE_ENV, f"ini {DEVICE_INI}"),
        parse_device_setting,
        problems,
    )
    gpu, gpu_source = _resolve(
        (cli_gpu, settings.get(GPU_ENV, environ), ini_gpu),
        (GPU_OPTION, GPU_ENV, f"ini {GPU_INI}"),
        _parse_gpu,
        problems,
    )
    return Settings(
        device=device if device is not None else ("auto",),
        device_source=device_source,
        gpu=gpu if gpu is not None else "auto",
        gpu_source=gpu_source,
        pin_gpus=pin_gpus,
        env_problem="; ".join(problems) or None,
    )


def _resolve(
    values: tuple[str | None, ...],
    sources: tuple[str, ...],
    parse: Callable[[str, str], T],
    problems: list[str],
) -> tuple[T | None, str]:
    """The first value given, parsed; an environment value that does not parse is noted and
    passed over (the next source, or the default, applies)."""
    for value, source in zip(values, sources):
        if value is None or not value.strip():
            continue
        try:
            return parse(value.strip(), source), source
        except ValueError as exc:
            if not source.startswith("ENVSETUP_"):
                raise
            problems.append(str(exc))
    return None, "default"
