from __future__ import annotations

import pytest


def pytest_addoption(parser):
    parser.addoption("--cuda", action="store_true", help="run on CUDA")


@pytest.fixture
def use_cuda(request):
    return request.config.getoption("--cuda")
