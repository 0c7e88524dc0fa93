from __future__ import annotations

import os

import pytest


def pytest_runtest_setup(item):
    marker = item.get_closest_marker("gpu")
    if marker is not None and not os.environ.get("COMPAT_HAS_GPU"):
        pytest.skip(f"own gpu marker: args={marker.args} kwargs={sorted(marker.kwargs)}")
