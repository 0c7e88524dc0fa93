from __future__ import annotations

import pytest


def test_devices(devices):
    assert devices == ["cpu"]


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_parametrized(device):
    assert device in ("cpu", "meta")
