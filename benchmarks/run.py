"""The one benchmark command: `python benchmarks/run.py [AREA ...] [--runs N]`.

Each `benchmarks/bench_<area>.py` exposes `run(report)`; this script finds them, runs the ones
asked for (all by default) and prints their tables. Every ratio is measured in this one run on
this machine: speed claims live here, never in timed tests.
"""

from __future__ import annotations

import argparse
import compileall
import importlib.util
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: Child processes may write and reuse bytecode, as an installed package would: with
#: PYTHONDONTWRITEBYTECODE set, every start recompiles every module and measures the compiler.
ENV = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}


class Report:
    """Times commands and callables (median of `runs`, after one warm-up) and prints rows."""

    def __init__(self, runs: int) -> None:
        self.runs = runs

    def section(self, title: str) -> None:
        print(f"\n## {title}\n")
        print(f"{'what':<58} {'median ms':>10} {'min ms':>8} {'max ms':>8}")

    def note(self, text: str) -> None:
        print(f"   {text}")

    def _row(self, label: str, samples: Sequence[float]) -> float:
        median = statistics.median(samples)
        print(f"{label:<58} {median:>10.2f} {min(samples):>8.2f} {max(samples):>8.2f}")
        return median

    def command(self, label: str, argv: Sequence[str], runs: int | None = None) -> float:
        """Median wall time in ms of the whole process `argv` (output discarded)."""
        return self.call(label, lambda: _spawn(argv), runs)

    def race(self, commands: Mapping[str, Sequence[str]], runs: int | None = None) -> list[float]:
        """Median ms of each command, sampled round-robin: on a shared machine the load drifts,
        and interleaving puts the same drift into every row, so their ratios stay honest."""
        samples: dict[str, list[float]] = {label: [] for label in commands}
        for argv in commands.values():
            _spawn(argv)
        for _ in range(runs or self.runs):
            for label, argv in commands.items():
                started = time.perf_counter()
                _spawn(argv)
                samples[label].append((time.perf_counter() - started) * 1000)
        return [self._row(label, samples[label]) for label in commands]

    def rows(self, samples: Mapping[str, Sequence[float]]) -> list[float]:
        """Print the median row of samples the caller measured (steps needing their own set-up,
        such as a fresh target directory per run); returns the medians."""
        return [self._row(label, values) for label, values in samples.items()]

    def call(self, label: str, function: Callable[[], object], runs: int | None = None) -> float:
        """Median wall time in ms of `function()`."""
        function()
        samples = []
        for _ in range(runs or self.runs):
            started = time.perf_counter()
            function()
            samples.append((time.perf_counter() - started) * 1000)
        return self._row(label, samples)

    def ratio(self, label: str, value: float, base: float, target: str | None = None) -> None:
        shown = f"{label:<58} {value / base:>10.2f}x"
        print(shown + (f"   (target {target})" if target else ""))


def _spawn(argv: Sequence[str]) -> None:
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV, check=False)


def areas() -> dict[str, Path]:
    return {path.stem[len("bench_") :]: path for path in sorted(HERE.glob("bench_*.py"))}


def main(argv: Sequence[str] | None = None) -> int:
    known = areas()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("areas", nargs="*", choices=[*known, []], metavar="AREA")
    parser.add_argument("--runs", type=int, default=21, help="runs per measurement (median)")
    args = parser.parse_args(argv)
    report = Report(args.runs)
    # Compile envsetup's bytecode first, as installing a wheel does; otherwise a read-only or
    # PYTHONDONTWRITEBYTECODE checkout measures the compiler on every start.
    compileall.compile_dir(HERE.parent / "envsetup", quiet=1)
    print(f"python {sys.version.split()[0]} at {sys.executable}; {args.runs} runs each")
    for name in args.areas or known:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", known[name])
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.run(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
