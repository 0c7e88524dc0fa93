from __future__ import annotations

import pytest


def pytest_addoption(parser):
    parser.addoption("--device", action="store", default="cpu")


@pytest.fixture
def device(request):
    return request.config.getoption("--device")
