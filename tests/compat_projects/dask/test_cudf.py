from __future__ import annotations

import pytest


@pytest.mark.gpu
def test_cudf_backend():
    pytest.importorskip("cudf")


@pytest.mark.gpu
def test_gpu_marked_without_gpu_library():
    pass


def test_plain():
    pass
