"""The pytest plugin's cost: 500 trivial tests with the plugin against `-p no:envsetup`, and 500
tests that use `device` on CPU against a hand-written conftest fixture returning cpu.

Targets (issues 4/6 and 2/5): both ratios <= 1.05, and a hung `nvidia-smi` on PATH adds nothing
to pytest's start (the header keeps to cheap probes). Runs at default verbosity so the header
(and the detection behind it) is paid, as in a real run. Without an installed torch, the fake
torch of the test suite stands in (the header then reads no torch metadata; the note says so).
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TESTS = 500
#: As in run.py: children may reuse bytecode, like an installed package.
ENV = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
TESTS_DIR = Path(__file__).resolve().parent.parent / "tests"

TRIVIAL = "".join(f"def test_{i}():\n    pass\n\n" for i in range(TESTS))
USES_DEVICE = f"""import pytest

@pytest.mark.parametrize("n", range({TESTS}))
def test_device(n, device):
    assert device.type == "cpu"
"""
HAND_WRITTEN = """import pytest
import torch

@pytest.fixture
def device():
    return torch.device("cpu")
"""


def _suite(root: Path, name: str, text: str, conftest: str | None = None) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / f"test_{name}.py").write_text(text)
    (folder / "pytest.ini").write_text("[pytest]\n")
    if conftest is not None:
        (folder / "conftest.py").write_text(conftest)
    if importlib.util.find_spec("torch") is None:
        _fake_torch().install(folder)  # the test folder is on sys.path (prepend import mode)
    return folder


def _fake_torch() -> Any:
    spec = importlib.util.spec_from_file_location(
        "fake_torch", TESTS_DIR / "support" / "fake_torch" / "__init__.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _paired(
    report: Any, runs: int, rows: dict[str, list[str]], env: dict[str, str] | None = None
) -> list[float]:
    """Median ms of each command, run alternately so load from other processes on a shared
    machine hits both sides of a ratio alike (one warm-up round first)."""
    samples: dict[str, list[float]] = {label: [] for label in rows}
    for round_ in range(runs + 1):
        for label, argv in rows.items():
            started = time.perf_counter()
            subprocess.run(argv, capture_output=True, env=env or ENV, check=False)
            if round_:
                samples[label].append((time.perf_counter() - started) * 1000)
    medians = []
    for label, values in samples.items():
        medians.append(statistics.median(values))
        report.note(f"{label:<55} {medians[-1]:>10.2f} {min(values):>8.2f} {max(values):>8.2f}")
    return medians


def run(report: Any) -> None:
    pytest = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly"]
    runs = report.runs
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        trivial = str(_suite(root, "trivial", TRIVIAL))
        plugin_device = str(_suite(root, "plugin_device", USES_DEVICE))
        own_device = str(_suite(root, "own_device", USES_DEVICE, HAND_WRITTEN))
        report.section(f"pytest plugin ({TESTS} tests, whole pytest process, runs alternated)")
        if importlib.util.find_spec("torch") is None:
            report.note("torch is not installed: the suites import the test suite's fake torch")
        bare, with_plugin = _paired(
            report,
            runs,
            {
                "500 trivial tests, -p no:envsetup": [*pytest, "-p", "no:envsetup", trivial],
                "500 trivial tests, with the plugin": [*pytest, trivial],
            },
        )
        own, fixture = _paired(
            report,
            runs,
            {
                "500 tests, conftest `device` -> cpu, -p no:envsetup": [
                    *pytest,
                    "-p",
                    "no:envsetup",
                    own_device,
                ],
                # cpu: on a GPU machine `auto` would pick the GPU, other work
                "500 tests, plugin `device` fixture, --envsetup-device cpu": [
                    *pytest,
                    "--envsetup-device",
                    "cpu",
                    plugin_device,
                ],
            },
        )
        hung = root / "hung-bin"
        hung.mkdir()
        (hung / "nvidia-smi").write_text("#!/bin/sh\nsleep 30\n")
        (hung / "nvidia-smi").chmod(0o755)
        one = str(_suite(root, "one", "def test_one():\n    pass\n"))
        start = [*pytest, "--co", one]
        normal = _paired(report, runs, {"pytest --co, 1 test, plain PATH": start})[0]
        stalled = _paired(
            report,
            runs,
            {"pytest --co, 1 test, hung nvidia-smi first on PATH": start},
            {**ENV, "PATH": f"{hung}{os.pathsep}{ENV.get('PATH', '')}"},
        )[0]
        report.ratio("trivial: plugin / -p no:envsetup", with_plugin, bare, "<= 1.05")
        report.ratio("device: plugin fixture / conftest fixture", fixture, own, "<= 1.05")
        report.ratio("start: hung nvidia-smi / plain PATH", stalled, normal, "<= 1.05")
