from __future__ import annotations


def pytest_addoption(parser):
    parser.addoption("--gpu", action="store", default=0, help="run the GPU version")
