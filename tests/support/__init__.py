"""Fakes the tests share: fake machines, a 127.0.0.1 index, fake torch and NVML."""
