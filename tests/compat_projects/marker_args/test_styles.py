from __future__ import annotations

import pytest


@pytest.mark.gpu(0)
def test_index():
    pass


@pytest.mark.gpu(type="A10", count=1)
def test_type():
    pass


@pytest.mark.gpu(reason="needs a GPU")
def test_reason():
    pass


def test_plain():
    pass
