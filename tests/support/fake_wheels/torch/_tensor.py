"""A dense float tensor of rank 0-2 on "cpu" or "cuda:N", in pure Python."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from typing import Any, Callable

from torch import cuda

_rng = random.Random(0)


def _device_name(device: object) -> str:
    name = str(device)
    if name == "cuda":
        return "cuda:0"
    if name != "cpu" and not name.startswith("cuda:"):
        raise RuntimeError(f"Expected one of cpu, cuda device type at start of: {name}")
    return name


class Tensor:
    def __init__(self, data: list[float], shape: tuple[int, ...], device: str = "cpu") -> None:
        self.data = data
        self.shape = shape
        self.device = device

    def _kernel(self) -> None:
        if self.device != "cpu":
            cuda.launch(int(self.device.partition(":")[2]))

    def _same_device(self, other: Tensor) -> None:
        if other.device != self.device:
            raise RuntimeError(
                "Expected all tensors to be on the same device, but found at least two devices,"
                f" {self.device} and {other.device}!"
            )
        self._kernel()

    def _map(self, fn: Callable[[float], float]) -> Tensor:
        self._kernel()
        return Tensor([fn(value) for value in self.data], self.shape, self.device)

    def to(self, device: object, non_blocking: bool = False) -> Tensor:
        name = _device_name(device)
        if name != "cpu":
            cuda.get_device_properties(int(name.partition(":")[2]))
        return Tensor(list(self.data), self.shape, name)

    def t(self) -> Tensor:
        rows, cols = self.shape
        data = [self.data[r * cols + c] for c in range(cols) for r in range(rows)]
        return Tensor(data, (cols, rows), self.device)

    def __matmul__(self, other: Tensor) -> Tensor:
        self._same_device(other)
        (rows, inner), (_, cols) = self.shape, other.shape
        data = [
            sum(self.data[r * inner + k] * other.data[k * cols + c] for k in range(inner))
            for r in range(rows)
            for c in range(cols)
        ]
        return Tensor(data, (rows, cols), self.device)

    def _zip(self, other: Tensor, fn: Callable[[float, float], float]) -> Tensor:
        self._same_device(other)
        width = len(other.data)
        data = [fn(value, other.data[index % width]) for index, value in enumerate(self.data)]
        return Tensor(data, self.shape, self.device)

    def __add__(self, other: Tensor) -> Tensor:
        return self._zip(other, lambda a, b: a + b)

    def __sub__(self, other: Tensor) -> Tensor:
        return self._zip(other, lambda a, b: a - b)

    def abs(self) -> Tensor:
        return self._map(abs)

    def max(self) -> Tensor:
        self._kernel()
        return Tensor([max(self.data)], (), self.device)

    def item(self) -> float:
        return self.data[0]

    def tolist(self) -> Any:
        if len(self.shape) < 2:
            return list(self.data) if self.shape else self.data[0]
        cols = self.shape[1]
        return [self.data[r * cols : (r + 1) * cols] for r in range(self.shape[0])]


def tensor(values: Any, dtype: object = None) -> Tensor:
    if values and isinstance(values[0], list):
        return Tensor([float(v) for row in values for v in row], (len(values), len(values[0])))
    return Tensor([float(v) for v in values], (len(values),))


def manual_seed(seed: int) -> None:
    _rng.seed(seed)


def randn(*shape: int) -> Tensor:
    count = 1
    for size in shape:
        count *= size
    return Tensor([_rng.gauss(0.0, 1.0) for _ in range(count)], tuple(shape))


def uniform(shape: tuple[int, ...], bound: float) -> Tensor:
    count = 1
    for size in shape:
        count *= size
    return Tensor([_rng.uniform(-bound, bound) for _ in range(count)], shape)


def relu(inputs: Tensor) -> Tensor:
    return inputs._map(lambda value: max(value, 0.0))


def allclose(a: Tensor, b: Tensor, rtol: float = 1e-5, atol: float = 1e-8) -> bool:
    a._same_device(b)
    return all(abs(x - y) <= atol + rtol * abs(y) for x, y in zip(a.data, b.data))


@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    yield
