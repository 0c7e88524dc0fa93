from __future__ import annotations


def test_device(device):
    assert device == "cuda"
