from __future__ import annotations

DEVICES = {"cpu": "cpu", "cuda": "cuda:0"}


def pytest_addoption(parser):
    parser.addoption("--device", action="store", default="cpu")
    parser.addoption("--dtype", action="store", default="float32")


def pytest_generate_tests(metafunc):
    if "device" in metafunc.fixturenames:
        raw = metafunc.config.getoption("--device")
        names = list(DEVICES) if raw == "all" else raw.split(",")
        metafunc.parametrize("device", [DEVICES[name] for name in names])
    if "dtype" in metafunc.fixturenames:
        metafunc.parametrize("dtype", metafunc.config.getoption("--dtype").split(","))
