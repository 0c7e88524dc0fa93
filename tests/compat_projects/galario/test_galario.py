from __future__ import annotations


def test_gpu_option(request):
    assert request.config.getoption("--gpu") == 0
