from __future__ import annotations


def test_filter(device, dtype):
    assert (device, dtype) == ("cpu", "float32")
