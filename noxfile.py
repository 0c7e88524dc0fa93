"""envsetup's own sessions: the test suite, lint, and one `verify` session per matrix cell.

    nox -l                                    # list everything
    nox -s tests lint                         # what plain `nox` runs
    nox -t cpu -s verify                      # every CPU cell
    nox -s "verify(python='3.11', torch='2.13.0', variant='cpu')"

A `verify` cell builds a fresh venv (uv when available), installs torch through envsetup's own
planner, runs `envsetup verify --expect ...` against it and a small pytest suite that uses the
plugin (tests/cell_suite). The cells come from `matrices/`, so the sessions prove the matrices.

Options, as environment variables (read when the cells are generated) or session posargs:
  ENVSETUP_NEWEST=N        only the N newest torch releases
  ENVSETUP_TORCH=SPEC      only releases matching SPEC (">=2.4")
  ENVSETUP_PYTHON=3.11,..  only these Pythons
  ENVSETUP_VARIANTS=cpu,.. only these variants or kinds (cuda, rocm)
  ENVSETUP_INDEX_URL=URL   a PEP 503 mirror of download.pytorch.org/whl
  ENVSETUP_WITH=torchvision,torchaudio   companions to install with torch (default none)
  ENVSETUP_MISSING_HARDWARE=skip|fail|run   or posargs `-- --missing-hardware fail`: a cell
      whose hardware this runner lacks is skipped (skip, the default), fails (fail), or is
      installed and checked without the device (run: CPU-only CI proving that the wheels exist
      and report the right build). Not `--gpu`/ENVSETUP_GPU: those are the pytest plugin's.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))  # the checkout's envsetup, even when nox runs from pipx

import envsetup.nox  # noqa: E402 (needs the path above)
from envsetup import settings  # noqa: E402
from envsetup.errors import UsageError  # noqa: E402
from envsetup.integrations.cells import newest_count  # noqa: E402

nox.needs_version = ">=2024.10.9"
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["tests", "lint"]

#: The Pythons envsetup supports, each used when this machine has it.
PYTHONS = [v for v in ("3.9", "3.10", "3.11", "3.12", "3.13") if shutil.which(f"python{v}")]
LINTED = ["envsetup", "tests", "benchmarks", "noxfile.py"]
MISSING_HARDWARE = ("skip", "fail", "run")
MISSING_HARDWARE_ENV = "ENVSETUP_MISSING_HARDWARE"
SUITE = ROOT / "tests" / "cell_suite"


def _env_list(name: str) -> list[str] | None:
    value = (settings.get(name) or "").strip()
    return [part.strip() for part in value.split(",") if part.strip()] or None


def _newest() -> int | None:
    try:
        return newest_count(settings.get("ENVSETUP_NEWEST"), "ENVSETUP_NEWEST")
    except UsageError as error:
        raise SystemExit(str(error)) from None


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The test suite, on every supported Python this machine has."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (check and format) and mypy strict."""
    session.install("-e", ".[test,lint]")
    session.run("ruff", "check", *LINTED)
    session.run("ruff", "format", "--check", *LINTED)
    session.run("mypy")


def _missing_hardware(session: nox.Session) -> str:
    """What a cell does on a runner without its hardware: posargs beat the environment."""
    mode = (settings.get(MISSING_HARDWARE_ENV) or "").strip() or "skip"
    args = list(session.posargs)
    for position, arg in enumerate(args):
        if arg == "--gpu" or arg.startswith("--gpu="):
            session.error(
                "`-- --gpu` was renamed `-- --missing-hardware skip|fail|run` (auto → skip, "
                "require → fail, ignore → run); --gpu / ENVSETUP_GPU name the pytest plugin's "
                "--envsetup-gpu, not what a cell does without its hardware"
            )
        if arg == "--missing-hardware" and position + 1 < len(args):
            mode = args[position + 1]
        elif arg.startswith("--missing-hardware="):
            mode = arg.partition("=")[2]
    if mode not in MISSING_HARDWARE:
        session.error(f"--missing-hardware {mode!r}: expected one of {', '.join(MISSING_HARDWARE)}")
    return mode


@nox.session(default=False)
@nox.parametrize(
    "python,torch,variant",
    envsetup.nox.cells(
        torch=settings.get("ENVSETUP_TORCH") or None,
        python=_env_list("ENVSETUP_PYTHON"),
        variants=_env_list("ENVSETUP_VARIANTS"),
        newest=_newest(),
    ),
)
def verify(session: nox.Session, torch: str, variant: str) -> None:
    """Install torch==TORCH (VARIANT) through the planner, then verify it from the inside."""
    from envsetup.detect import detect
    from envsetup.integrations.cells import Cell, missing_hardware

    mode = _missing_hardware(session)
    machine = detect()
    python = str(session.python)
    cell = Cell(python=python, torch=torch, variant=variant, platform=machine.platform.key)
    gap = missing_hardware(cell, machine)
    if gap and mode == "fail":
        session.error(f"{gap} (--missing-hardware fail)")
    if gap and mode == "skip":
        session.skip(
            f"{gap}; run with --missing-hardware run to check the build without the device"
        )
    with_ = _env_list("ENVSETUP_WITH") or ()
    plan = envsetup.nox.install_torch(
        session, torch=f"=={torch}", backend=variant, with_=with_, machine=machine
    )
    session.log(f"installed {' '.join(plan.packages)} from {plan.source}")
    interpreter = str(Path(session.bin) / "python")
    expect = ["--expect", f"torch=={torch}", "--expect-variant", variant]
    gpu = cell.runner == "gpu" and mode == "fail"
    session.run(
        sys.executable,
        "-m",
        "envsetup",
        "verify",
        "--python",
        interpreter,
        *expect,
        *(["--require-gpu"] if gpu else []),
        external=True,
        env={"PYTHONPATH": str(ROOT)},  # envsetup need not be installed where nox runs (pipx)
    )
    session.install("pytest")
    session.run(
        "python",
        "-m",
        "pytest",
        str(SUITE),  # its own pytest.ini loads the plugin from this checkout
        "--envsetup-gpu",
        "require" if gpu else "auto",
        env={
            "PYTHONPATH": str(ROOT),  # the plugin from this checkout, without building a wheel
            "ENVSETUP_CELL_TORCH": torch,
            "ENVSETUP_CELL_VARIANT": variant,
        },
    )
