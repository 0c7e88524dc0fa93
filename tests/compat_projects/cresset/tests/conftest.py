from __future__ import annotations

import pytest


def pytest_addoption(parser):
    parser.addoption("--gpu", type=int, default=-1, help="GPU index, -1 for the CPU")


@pytest.fixture
def gpu(request):
    return request.config.getoption("--gpu")
