"""The pytest plugin's two settings, `device` and `gpu`, on one precedence ladder.

Command line > environment (ENVSETUP_DEVICE, ENVSETUP_GPU) > ini (`envsetup_device`,
`envsetup_gpu`) > default "auto", in the way pytest-timeout resolves its timeout. A bad value is
reported with the place it came from, because "invalid value" alone sends users hunting through
CI files, tox.ini and pyproject.toml.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_DEVICE = re.compile(r"^(cpu|mps|cuda(:\d+)?)$")

GPU_MODES = ("auto", "require", "skip", "only")

DEVICE_HELP = (
    "device for the `device` fixture: auto (accelerator if torch can use one, else cpu), cpu, "
    "cuda, cuda:N, mps, a list 'cpu,cuda:0', or all (each test once per detected device). "
    "Env ENVSETUP_DEVICE, ini envsetup_device."
)
GPU_HELP = (
    "gpu-marked tests: auto (skip without a usable GPU), require (fail when torch cannot use "
    "the GPU: for GPU CI), skip (skip them), only (deselect every other test). "
    "Env ENVSETUP_GPU, ini envsetup_gpu."
)


def parse_device_setting(value: str, source: str) -> tuple[str, ...]:
    """("auto",), ("all",) or concrete devices ("cpu", "cuda:0", ...) from `--device` & co."""
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


@dataclass(frozen=True)
class Settings:
    """Effective settings and where each came from ("--device", "ENVSETUP_DEVICE", ...)."""

    device: tuple[str, ...] = ("auto",)
    device_source: str = "default"
    gpu: str = "auto"
    gpu_source: str = "default"

    @property
    def device_label(self) -> str:
        return ",".join(self.device)


def _pick(values: tuple[str | None, ...], sources: tuple[str, ...]) -> tuple[str, str]:
    for value, source in zip(values, sources):
        if value is not None and value.strip():
            return value.strip(), source
    return "auto", "default"


def load_settings(
    *,
    cli_device: str | None,
    cli_gpu: str | None,
    environ: Mapping[str, str],
    ini_device: str | None,
    ini_gpu: str | None,
) -> Settings:
    """Resolve both settings; ValueError names the offending value and its source."""
    device, device_source = _pick(
        (cli_device, environ.get("ENVSETUP_DEVICE"), ini_device),
        ("--device", "ENVSETUP_DEVICE", "ini envsetup_device"),
    )
    gpu, gpu_source = _pick(
        (cli_gpu, environ.get("ENVSETUP_GPU"), ini_gpu),
        ("--gpu", "ENVSETUP_GPU", "ini envsetup_gpu"),
    )
    if gpu not in GPU_MODES:
        raise ValueError(
            f"invalid gpu mode {gpu!r} (from {gpu_source}); expected one of {', '.join(GPU_MODES)}"
        )
    return Settings(parse_device_setting(device, device_source), device_source, gpu, gpu_source)
