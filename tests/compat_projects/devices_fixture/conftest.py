from __future__ import annotations

import pytest


@pytest.fixture
def devices():
    return ["cpu"]
