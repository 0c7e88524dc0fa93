from __future__ import annotations


def test_gpu_index(gpu):
    assert gpu == -1
