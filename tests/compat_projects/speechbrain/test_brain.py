from __future__ import annotations

import pytest


@pytest.mark.parametrize("n", range(3))
def test_brain(device, n):
    assert device == "cpu"
