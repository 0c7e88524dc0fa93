from __future__ import annotations

import pytest


def pytest_generate_tests(metafunc):
    if "device" in metafunc.fixturenames:
        metafunc.parametrize("device", ["cpu", "meta"], indirect=True)


@pytest.fixture
def device(request):
    return f"own:{request.param}"
