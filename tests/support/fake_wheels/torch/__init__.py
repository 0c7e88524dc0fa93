"""A fake torch, small enough to pip-install in a second, real enough for `envsetup verify`.

The build facts (`__version__`, `version.cuda`, `get_arch_list()`) are baked into `_build.py` by
tests/support/fake_index.py. The machine it "runs" on comes from the environment, so CPU-only CI can
play
any GPU situation:

FAKE_TORCH_GPUS         "NVIDIA H100 80GB HBM3:81079:9.0;Tesla T4:15360:7.5" (name:MiB:cc); unset:
                        no GPU and no driver. CUDA_VISIBLE_DEVICES filters them like the runtime.
FAKE_TORCH_DRIVER_CUDA  "12.2": the newest CUDA the simulated driver supports (default: any).
FAKE_TORCH_MPS          "1": torch.backends.mps reports an Apple GPU.

Tensors are flat lists of floats with a shape; "cuda" tensors compute the same arithmetic after
checking, like the real runtime, that a kernel for the GPU's compute capability exists.
"""

from __future__ import annotations

from torch import backends, cuda, nn, version
from torch._build import VERSION
from torch._tensor import Tensor, allclose, manual_seed, no_grad, randn, relu, tensor

__version__ = VERSION


class device:  # lower case, like torch.device
    """`torch.device("cuda:1")` / `torch.device("cuda", 1)` with `.type`, `.index`, str()."""

    def __init__(self, spec: str, index: int | None = None) -> None:
        kind, _, number = spec.partition(":")
        if kind not in ("cpu", "cuda", "mps", "xpu", "meta"):
            raise RuntimeError(f"Expected one of cpu, cuda, mps, xpu device type: {spec}")
        self.type = kind
        self.index = int(number) if number else index

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __eq__(self, other: object) -> bool:
        return str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))


__all__ = [
    "Tensor",
    "__version__",
    "allclose",
    "backends",
    "cuda",
    "device",
    "manual_seed",
    "nn",
    "no_grad",
    "randn",
    "relu",
    "tensor",
    "version",
]
