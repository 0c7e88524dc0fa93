"""A fake torch, small enough to pip-install in a second, real enough for `envsetup verify`.

The build facts (`__version__`, `version.cuda`, `get_arch_list()`) are baked into `_build.py` by
tests/fake_index.py. The machine it "runs" on comes from the environment, so CPU-only CI can play
any GPU situation:

FAKE_TORCH_GPUS         "NVIDIA H100 80GB HBM3:81079:9.0;Tesla T4:15360:7.5" (name:MiB:cc); unset:
                        no GPU and no driver. CUDA_VISIBLE_DEVICES filters them like the runtime.
FAKE_TORCH_DRIVER_CUDA  "12.2": the newest CUDA the simulated driver supports (default: any).

Tensors are flat lists of floats with a shape; "cuda" tensors compute the same arithmetic after
checking, like the real runtime, that a kernel for the GPU's compute capability exists.
"""

from __future__ import annotations

from torch import cuda, nn, version
from torch._build import VERSION
from torch._tensor import Tensor, allclose, manual_seed, no_grad, randn, relu, tensor

__version__ = VERSION
__all__ = [
    "Tensor",
    "__version__",
    "allclose",
    "cuda",
    "manual_seed",
    "nn",
    "no_grad",
    "randn",
    "relu",
    "tensor",
    "version",
]
