"""`detect()` on fake machines and the `envsetup detect` verb, in-process and as a process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import fakes

from envsetup import cli
from envsetup.detect import detect, machine_from_nvidia_smi
from envsetup.model.machine import Platform

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="fake sysfs trees and POSIX tool scripts"
)

LINUX = Platform(os="linux", arch="x86_64", python="3.11")
REPO = Path(__file__).resolve().parents[3]


def _sources(machine: object) -> list[str]:
    return [item.source for item in machine.evidence]  # type: ignore[attr-defined]


def test_no_gpu_machine(tmp_path: Path) -> None:
    machine = detect(root=tmp_path, environ={"PATH": str(tmp_path / "bin")})
    assert machine.driver_version is None and machine.cuda_version is None
    assert machine.gpus == () and machine.errors == () and machine.warnings == ()
    assert "/sys/module/nvidia/version" in _sources(machine)
    assert not any("NVML" in source for source in _sources(machine))  # no module: NVML skipped


def test_driver_files_and_nvidia_smi(tmp_path: Path) -> None:
    fakes.nvidia_driver(tmp_path)
    log = tmp_path / "calls.log"
    fakes.fake_tool(tmp_path / "bin", "nvidia-smi", outputs=fakes.smi_outputs(), log=log)
    machine = detect(root=tmp_path, environ=fakes.environ_with_path(tmp_path / "bin"))
    assert machine.driver_version == "580.159.04"
    assert machine.cuda_version == "13.0"
    assert machine.device_nodes is True
    (gpu,) = machine.gpus
    assert (gpu.name, gpu.memory_mib, gpu.compute_capability) == (
        "NVIDIA H100 80GB HBM3",
        81559,
        "9.0",
    )
    assert gpu.uuid == "GPU-bcfee904-df4b-4b87-881e-903b769eea31"
    # One query for the GPUs, one plain call for the CUDA version; nothing else.
    calls = log.read_text().splitlines()
    assert len(calls) == 2 and calls[0].startswith("--query-gpu=index,name,driver_version")
    assert calls[1] == ""
    doc = machine.to_json()
    assert doc["evidence"][0]["fact"] == "platform"
    assert {"fact": "cuda_version", "value": "13.0", "source": "nvidia-smi"} in [
        {key: item[key] for key in ("fact", "value", "source")} for item in doc["evidence"]
    ]


@pytest.mark.skipif(fakes.compiler() is None, reason="needs a C compiler")
def test_nvml_answers_everything_so_nvidia_smi_never_runs(tmp_path: Path) -> None:
    fakes.nvidia_driver(tmp_path, nodes=2)
    fakes.build_fake_nvml(
        tmp_path / "usr/lib64/libnvidia-ml.so.1",
        gpus=(("NVIDIA A100-SXM4-80GB", "8.0"), ("NVIDIA A100-SXM4-80GB", "8.0")),
        cuda=12040,
        driver="550.144.03",
    )
    log = tmp_path / "calls.log"
    fakes.fake_tool(tmp_path / "bin", "nvidia-smi", outputs=fakes.smi_outputs(), log=log)
    machine = detect(
        root=tmp_path,
        environ=fakes.environ_with_path(tmp_path / "bin", CUDA_VISIBLE_DEVICES="1"),
    )
    assert not log.exists()
    assert machine.cuda_version == "12.4"
    assert machine.driver_version == "580.159.04"  # the kernel module's file answered first
    assert [gpu.compute_capability for gpu in machine.gpus] == ["8.0", "8.0"]
    assert machine.visible_gpus == ("1",)
    assert any(source.startswith("NVML ") for source in _sources(machine))


LEAK_PROBE = """
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from support import fakes
from envsetup.detect import detect
from envsetup.detect import nvml
root = Path(sys.argv[1])
real = nvml.query_nvml(nvml.library_candidates("nvidia-ml", Path("/"), "linux", False), timeout=30)
fake = detect(root=root, environ=fakes.environ_with_path(root / "bin"))
print(json.dumps({
    "real": [device.name.decode() for device in real.devices] if real else None,
    "gpus": [gpu.name for gpu in fake.gpus],
    "sources": [item.source for item in fake.evidence],
}))
"""


@pytest.mark.skipif(fakes.compiler() is None, reason="needs a C compiler")
def test_a_fake_root_is_a_fake_machine_where_a_real_driver_is_installed(tmp_path: Path) -> None:
    """On a GPU machine the driver's NVML is on the loader path and nvidia-smi is in the system
    folders: neither may answer for a fake tree (the loader path is set before the process
    starts, hence the child process)."""
    real = tmp_path / "real"
    fakes.build_fake_nvml(real / "lib/libnvidia-ml.so.1", gpus=(("Real GPU", "9.0"),))
    fakes.fake_tool(real / "bin", "nvidia-smi", log=real / "nvidia-smi.log")
    root = tmp_path / "root"
    fakes.nvidia_driver(root)  # a driver loaded, and no NVML, no nvidia-smi of the fake's own
    env = {
        **os.environ,
        "LD_LIBRARY_PATH": str(real / "lib"),
        "PATH": os.pathsep.join([str(real / "bin"), os.environ["PATH"]]),
        "PYTHONPATH": str(REPO),
    }
    result = subprocess.run(
        [sys.executable, "-c", LEAK_PROBE, str(root), str(Path(__file__).parents[2])],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    seen = json.loads(result.stdout)
    assert seen["real"] == ["Real GPU"]  # the leak is live in that process...
    assert seen["gpus"] == []  # ...and the fake machine has no GPU
    assert "NVML (no libnvidia-ml / nvml.dll found)" in seen["sources"]
    assert not (real / "nvidia-smi.log").exists()


@pytest.mark.skipif(fakes.compiler() is None, reason="needs a C compiler")
def test_nvml_driver_mismatch_is_reported_once_and_nvidia_smi_is_spared(tmp_path: Path) -> None:
    fakes.nvidia_driver(tmp_path)
    fakes.build_fake_nvml(tmp_path / "usr/lib64/libnvidia-ml.so.1", init_rc=18)
    log = tmp_path / "calls.log"
    fakes.fake_tool(tmp_path / "bin", "nvidia-smi", outputs=fakes.smi_outputs(), log=log)
    machine = detect(root=tmp_path, environ=fakes.environ_with_path(tmp_path / "bin"))
    assert [problem.kind for problem in machine.errors] == ["version_mismatch"]
    assert "reboot" in (machine.errors[0].hint or "")
    assert not log.exists()
    assert machine.driver_version == "580.159.04"  # the kernel module still says which


def test_hung_nvidia_smi_is_a_timeout_within_the_limit(tmp_path: Path) -> None:
    fakes.nvidia_driver(tmp_path)
    fakes.fake_tool(tmp_path / "bin", "nvidia-smi", hang=True)
    started = time.monotonic()
    machine = detect(root=tmp_path, environ=fakes.environ_with_path(tmp_path / "bin"), timeout=0.5)
    assert time.monotonic() - started < 0.5 + 3.0  # one call only: a second would hang too
    assert [problem.kind for problem in machine.errors] == ["timeout"]
    assert machine.driver_version == "580.159.04"
    assert machine.cuda_version == "13.0"  # derived from the driver through matrices/


def test_crashing_nvidia_smi(tmp_path: Path) -> None:
    fakes.nvidia_driver(tmp_path)
    fakes.fake_tool(tmp_path / "bin", "nvidia-smi", crash=True)
    machine = detect(root=tmp_path, environ=fakes.environ_with_path(tmp_path / "bin"))
    (problem,) = machine.errors
    assert problem.kind == "unparseable" and "signal 11" in problem.message


def test_nvidia_smi_without_a_loaded_driver_is_diagnosed(tmp_path: Path) -> None:
    text = (fakes.SMI_SAMPLES / "wsl-no-driver-error.txt").read_text()
    fakes.fake_tool(tmp_path / "bin", "nvidia-smi", stdout=text, exit_code=9)
    machine = detect(root=tmp_path, environ=fakes.environ_with_path(tmp_path / "bin"))
    assert [problem.kind for problem in machine.errors] == ["no_driver"]
    assert machine.gpus == ()


def test_not_executable_nvidia_smi_is_a_warning(tmp_path: Path) -> None:
    fakes.nvidia_driver(tmp_path)
    fakes.fake_tool(tmp_path / "bin", "nvidia-smi", stdout="x", executable=False)
    machine = detect(root=tmp_path, environ={"PATH": str(tmp_path / "bin")})
    assert any("not executable" in warning for warning in machine.warnings)
    assert machine.cuda_version == "13.0"


def test_container_sees_the_driver_but_not_the_gpu(tmp_path: Path) -> None:
    fakes.nvidia_driver(tmp_path, nodes=None)
    machine = detect(root=tmp_path, environ={"PATH": str(tmp_path / "bin")})
    assert machine.device_nodes is False
    assert any("--gpus all" in warning for warning in machine.warnings)


def test_overrides_win_and_a_forced_driver_rederives_cuda(tmp_path: Path) -> None:
    fakes.nvidia_driver(tmp_path)
    fakes.fake_tool(tmp_path / "bin", "nvidia-smi", outputs=fakes.smi_outputs())
    environ = fakes.environ_with_path(
        tmp_path / "bin",
        UV_CUDA_DRIVER_VERSION="535.104.05",
        ENVSETUP_COMPUTE_CAP="8.6",
        UV_TORCH_BACKEND="cu121",
    )
    machine = detect(root=tmp_path, environ=environ)
    assert machine.driver_version == "535.104.05"
    assert machine.cuda_version == "12.2"
    assert [gpu.compute_capability for gpu in machine.gpus] == ["8.6"]
    assert machine.backend_override == "cu121"
    assert "env UV_CUDA_DRIVER_VERSION" in _sources(machine)
    assert any("overrides the detected driver version 580.159.04" in w for w in machine.warnings)


def test_overrides_describe_a_machine_without_a_gpu(tmp_path: Path) -> None:
    environ = {"ENVSETUP_CUDA_VERSION": "12.4", "ENVSETUP_COMPUTE_CAP": "8.0,9.0"}
    machine = detect(root=tmp_path, environ=environ)
    assert machine.cuda_version == "12.4"
    assert [(gpu.index, gpu.compute_capability) for gpu in machine.gpus] == [(0, "8.0"), (1, "9.0")]


def test_cuda_visible_devices_beyond_the_gpus_warns(tmp_path: Path) -> None:
    fakes.nvidia_driver(tmp_path)
    fakes.fake_tool(tmp_path / "bin", "nvidia-smi", outputs=fakes.smi_outputs())
    environ = fakes.environ_with_path(tmp_path / "bin", CUDA_VISIBLE_DEVICES="0,3")
    machine = detect(root=tmp_path, environ=environ)
    assert any("names GPU 3 but only 1 exist" in warning for warning in machine.warnings)


def test_amd_gpus_follow_nvidia_ones(tmp_path: Path) -> None:
    fakes.kfd_node(tmp_path, 0, 0)
    fakes.kfd_node(tmp_path, 1, 90402)
    fakes.write(tmp_path, "dev/kfd", "")
    machine = detect(root=tmp_path, environ={"PATH": ""})
    assert machine.to_json()["rocm"] == ["gfx942"]


def test_wsl_finds_nvidia_smi_in_the_driver_folder(tmp_path: Path) -> None:
    fakes.wsl(tmp_path)
    fakes.fake_tool(tmp_path / "usr/lib/wsl/lib", "nvidia-smi", outputs=fakes.smi_outputs())
    machine = detect(root=tmp_path, environ=fakes.environ_with_path(tmp_path / "bin"))
    assert machine.platform.wsl
    assert machine.device_nodes is True
    assert [gpu.name for gpu in machine.gpus] == ["NVIDIA H100 80GB HBM3"]


@pytest.mark.parametrize(
    "sample", ["h100-580-table.txt", "h100-580-query-gpu.csv", "h100-580-q.txt", "h100-580-q-x.xml"]
)
def test_machine_from_saved_output(sample: str) -> None:
    machine = machine_from_nvidia_smi((fakes.SMI_SAMPLES / sample).read_text(), platform=LINUX)
    assert machine.driver_version == "580.159.04"
    assert machine.cuda_version == "13.0"
    assert machine.gpus[0].name == "NVIDIA H100 80GB HBM3"
    assert machine.errors == ()


def test_saved_error_output_is_a_finding() -> None:
    text = (fakes.SMI_SAMPLES / "wsl-no-driver-error.txt").read_text()
    machine = machine_from_nvidia_smi(text, platform=LINUX)
    assert [problem.kind for problem in machine.errors] == ["no_driver"]


# --- the verb ----------------------------------------------------------------------------------

JSON_KEYS = {
    "driver_version",
    "cuda_version",
    "gpus",
    "visible_gpus",
    "mig",
    "platform",
    "rocm",
    "mps",
    "evidence",
    "warnings",
    "errors",
}


def test_cli_json_from_a_saved_output(capsys: pytest.CaptureFixture[str]) -> None:
    sample = str(fakes.SMI_SAMPLES / "h100-580-table.txt")
    assert cli.main(["detect", "--json", "--nvidia-smi-output", sample]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc.keys() >= JSON_KEYS
    assert doc["gpus"][0]["memory_mib"] == 81559
    assert doc["cuda_version"] == "13.0"


def test_cli_human_summary_names_sources(capsys: pytest.CaptureFixture[str]) -> None:
    sample = str(fakes.SMI_SAMPLES / "h100-580-query-gpu.csv")
    assert cli.main(["detect", "--nvidia-smi-output", sample]) == 0
    out = capsys.readouterr().out
    assert "NVIDIA H100 80GB HBM3, 81559 MiB, compute capability 9.0" in out
    assert "driver      NVIDIA 580.159.04  (from nvidia-smi output (query))" in out
    assert "max CUDA    13.0  (from matrices: newest CUDA for driver 580.159.04)" in out


def test_cli_unreadable_file_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["detect", "--nvidia-smi-output", str(tmp_path / "missing.txt")]) == 2
    err = capsys.readouterr().err
    assert "cannot read the nvidia-smi output" in err and "No such file" in err
    assert "Traceback" not in err


def test_cli_bad_timeout_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["detect", "--timeout", "soon"])
    assert exit_.value.code == 2
    assert "expected seconds" in capsys.readouterr().err


def _run(
    *args: str, env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "envsetup", *args],
        capture_output=True,
        text=True,
        env=env,
        input=stdin,
        timeout=60,
        check=False,
    )


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """This interpreter's environment, minus overrides, plus a poisoned `torch` on PYTHONPATH."""
    poisoned = tmp_path / "poison"
    fakes.write(poisoned, "torch/__init__.py", "raise ImportError('envsetup imported torch')\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENVSETUP_", "UV_", "CONDA_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(poisoned), str(REPO)])
    env.update(extra)
    return env


def test_detect_json_process_never_imports_torch(tmp_path: Path) -> None:
    code = (
        "import json, sys; from envsetup import cli; rc = cli.main(['detect', '--json']); "
        "print(json.dumps({'rc': rc, 'torch': 'torch' in sys.modules}), file=sys.stderr)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=_env(tmp_path),
        timeout=60,
        check=False,
    )
    assert json.loads(result.stderr.strip().splitlines()[-1]) == {"rc": 0, "torch": False}
    assert json.loads(result.stdout).keys() >= JSON_KEYS


def test_detect_process_reads_stdin_and_reports_errors_with_exit_0(tmp_path: Path) -> None:
    text = (fakes.SMI_SAMPLES / "wsl-no-driver-error.txt").read_text()
    result = _run("detect", "--json", "--nvidia-smi-output", "-", env=_env(tmp_path), stdin=text)
    assert result.returncode == 0, result.stderr
    assert [error["kind"] for error in json.loads(result.stdout)["errors"]] == ["no_driver"]


def test_detect_process_with_a_hung_nvidia_smi_honours_timeout(tmp_path: Path) -> None:
    fakes.fake_tool(tmp_path / "bin", "nvidia-smi", hang=True)
    env = _env(tmp_path, PATH=os.pathsep.join([str(tmp_path / "bin"), "/usr/bin", "/bin"]))
    started = time.monotonic()
    result = _run("detect", "--json", "--timeout", "1", env=env)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert elapsed < 1 + 5.0
    kinds = [error["kind"] for error in json.loads(result.stdout)["errors"]]
    assert "timeout" in kinds or Path("/sys/module/nvidia/version").exists()


def test_detect_process_unreadable_file_one_line(tmp_path: Path) -> None:
    result = _run("detect", "--nvidia-smi-output", str(tmp_path), env=_env(tmp_path))
    assert result.returncode == 2
    assert result.stderr.startswith("envsetup: error: cannot read the nvidia-smi output")
    assert "Traceback" not in result.stderr


def test_cli_malformed_override_is_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ENVSETUP_COMPUTE_CAP", "ampere")
    assert cli.main(["detect"]) == 2
    err = capsys.readouterr().err
    assert "ENVSETUP_COMPUTE_CAP='ampere' is not compute capabilities such as 8.6" in err
    assert "hint: fix or unset ENVSETUP_COMPUTE_CAP" in err
