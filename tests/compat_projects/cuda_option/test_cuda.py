from __future__ import annotations


def test_cpu_by_default(use_cuda):
    assert use_cuda is False
