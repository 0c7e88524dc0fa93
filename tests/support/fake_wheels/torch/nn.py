"""torch.nn.Linear: the one layer the round trip moves between devices."""

from __future__ import annotations

import math

from torch._tensor import Tensor, uniform


class Linear:
    def __init__(self, in_features: int, out_features: int) -> None:
        bound = 1 / math.sqrt(in_features)
        self.weight = uniform((out_features, in_features), bound)
        self.bias = uniform((out_features,), bound)

    def to(self, device: str) -> Linear:
        self.weight = self.weight.to(device)
        self.bias = self.bias.to(device)
        return self

    def __call__(self, inputs: Tensor) -> Tensor:
        return inputs @ self.weight.t() + self.bias
