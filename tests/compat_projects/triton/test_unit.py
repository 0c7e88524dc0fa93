from __future__ import annotations


def test_default_device(device):
    assert device == "cuda"
