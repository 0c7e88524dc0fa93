"""Inside a cell: the installed torch is the requested build, and the plugin's device works."""

from __future__ import annotations

import os
from typing import Any

import pytest


def test_installed_build_is_the_cell() -> None:
    import torch

    version, _, local = torch.__version__.partition("+")
    assert version == os.environ["ENVSETUP_CELL_TORCH"]
    variant = os.environ["ENVSETUP_CELL_VARIANT"]
    if variant.startswith("cu"):
        cuda = torch.version.cuda or ""
        assert "cu" + cuda.replace(".", "") == variant, f"torch.version.cuda is {cuda!r}"
    elif variant.startswith("rocm"):
        assert torch.version.hip, "a ROCm cell installed a build without HIP"
    elif local:  # PyPI's macOS/Windows CPU wheels carry no local tag
        assert local == variant


def _compute(x: Any, device: Any) -> Any:
    on_device = x.to(device)
    return (on_device @ on_device + on_device).to("cpu").tolist()


def test_round_trip_on_the_plugin_device(device: Any) -> None:
    import torch

    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert _compute(x, device) == _compute(x, "cpu") == [[8.0, 12.0], [18.0, 26.0]]


@pytest.mark.gpu
def test_gpu_round_trip(device: Any) -> None:
    import torch

    x = torch.randn(16, 16)
    assert torch.allclose(torch.tensor(_compute(x, device)), torch.tensor(_compute(x, "cpu")))
