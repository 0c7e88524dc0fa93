"""The plugin is a good guest: projects shaped like real public ones run exactly as with
`-p no:envsetup` — same outcomes, skip reasons, warnings and environment — even with ENVSETUP_*
variables exported for some other project, malformed ones included, and with pytest-randomly,
pytest-timeout, pytest-cov and pytest-xdist loaded alongside.

Each project under tests/compat_projects/ follows a public conftest: triton and speechbrain
(`--device` plus a `device` fixture), kornia (`--device`, `pytest_generate_tests` over `device`),
cresset (`--gpu`, type=int), galario (`--gpu`), triton's conftest in a subfolder, dask (its own
`gpu` marker), `gpu` markers with arguments envsetup does not define, a `--cuda` option, a
`devices` fixture, a conftest `device` fixture parametrized indirectly, `filterwarnings = error`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parents[1]
PROJECTS = HERE / "compat_projects"
ROOT = HERE.parent


def _autoloads() -> bool:
    from importlib.metadata import entry_points

    found = entry_points()
    group = found.select(group="pytest11") if hasattr(found, "select") else found["pytest11"]
    return any(e.name == "envsetup" for e in group)


#: Where envsetup is only importable (not installed) there is no entry point to name.
WITH = () if _autoloads() else ("-p", "envsetup.integrations.pytest_plugin")
WITHOUT = ("-p", "no:envsetup") if _autoloads() else ()

#: Exported for another project on the same CI machine, or simply wrong.
ENVIRONMENTS = {
    "clean": {},
    "exported-for-another-project": {
        "ENVSETUP_DEVICE": "cpu,cuda:0",
        "ENVSETUP_GPU": "only",
        "CUDA_VISIBLE_DEVICES": "0,1",
    },
    "malformed": {
        "ENVSETUP_DEVICE": "tpu",
        "ENVSETUP_GPU": "always",
        "ENVSETUP_COMPUTE_CAP": "banana",
        "ENVSETUP_CUDA_VERSION": "twelve",
        "ENVSETUP_BACKEND": "nope",
    },
}
#: Extra arguments per project: the xdist run is where pinning and its warning used to bite.
ARGS = {"filterwarnings_error": ("-n", "3"), "plain": ("-n", "2")}
_SUMMARY = re.compile(r"^(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b.*$", re.MULTILINE)
_COUNTS = re.compile(r"^=+ (.*?) in [\d.]+s.*=+$", re.MULTILINE)


def _environ(extra: dict[str, str]) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ENVSETUP_", "PYTEST_", "COV_", "CUDA_", "HIP_"))
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env.update(extra)
    return env


def run_project(
    name: str, tmp: Path, plugin: tuple[str, ...], env: dict[str, str], *args: str
) -> tuple[int, list[str], str, dict[str, str]]:
    """Run a fresh copy of the project: exit code, sorted summary lines, counts, environments."""
    folder = tmp / name
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(PROJECTS / name, folder)
    argv = [sys.executable, "-m", "pytest", "-rA", "-p", "no:cacheprovider", *plugin, *args]
    done = subprocess.run(
        argv,
        check=False,
        cwd=folder,
        env=_environ(env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    counts = _COUNTS.findall(done.stdout)
    seen = {path.name: path.read_text() for path in folder.glob("env.json")}
    return done.returncode, summary_lines(done.stdout), "".join(counts[-1:]), seen


def summary_lines(done_stdout: str) -> list[str]:
    return sorted(match.group(0) for match in _SUMMARY.finditer(done_stdout))


@pytest.mark.parametrize("environment", sorted(ENVIRONMENTS))
@pytest.mark.parametrize("project", sorted(path.name for path in PROJECTS.iterdir()))
def test_a_foreign_suite_runs_as_with_p_no_envsetup(project, environment, tmp_path):
    env, args = ENVIRONMENTS[environment], ARGS.get(project, ())
    without = run_project(project, tmp_path / "without", WITHOUT, env, *args)
    assert without[0] == 0, without  # the project itself is sound
    with_plugin = run_project(project, tmp_path / "with", WITH, env, *args)
    assert with_plugin == without


def test_randomly_timeout_cov_and_xdist_load_together_with_envsetup(tmp_path):
    args = ("-p", "randomly", "--timeout", "60", "--cov", ".", "--cov-report=", "-n", "2")
    without = run_project("speechbrain", tmp_path / "without", WITHOUT, {}, *args)
    assert without[0] == 0, without
    assert run_project("speechbrain", tmp_path / "with", WITH, {}, *args) == without


def test_a_suite_using_envsetup_runs_with_randomly_timeout_cov_and_xdist(tmp_path):
    """Bare `gpu` tests (envsetup's marker) and no torch: judged from detection, here no GPU."""
    (tmp_path / "pytest.ini").write_text("[pytest]\nenvsetup_gpu = auto\n")
    tests = "import pytest\n\n@pytest.mark.gpu\ndef test_gpu():\n    pass\n\n"
    (tmp_path / "test_x.py").write_text(tests + "def test_cpu():\n    pass\n")
    argv = [sys.executable, "-m", "pytest", "-rA", "-p", "randomly", "--timeout", "60"]
    argv += ["--cov", ".", "--cov-report=", "-n", "2", *WITH]
    done = subprocess.run(
        argv, check=False, cwd=tmp_path, env=_environ({}), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    if "no GPU detected" in done.stdout.partition("\n\n")[0]:
        assert "SKIPPED [1] test_x.py:3: no GPU detected (torch is not installed" in done.stdout
