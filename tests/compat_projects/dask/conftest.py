from __future__ import annotations


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: marks tests we want to run on GPUs")
