"""`envsetup plan` end to end: flags → machine → plan → output, exit codes, no torch import."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from envsetup.cli import main
from envsetup.matrices import load

#: The newest release in the matrices: what a plan without --torch picks where nothing narrows it.
NEWEST = load().releases[-1].torch

NVIDIA_SMI = Path(__file__).parents[1] / "data" / "nvidia-smi"
AMPERE = ["--driver", "535.104.05", "--cuda", "12.2", "--compute-cap", "8.6"]
TARGET = ["--platform", "linux-x86_64", "--python", "3.11"]
PIP = ["--installer", "pip"]  # the default, auto, picks uv where it is on PATH


def run_plan(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["plan", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_human_output_puts_the_command_first(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_plan(
        capsys, *AMPERE, *TARGET, *PIP, "--torch", "2.5.1", "--with", "torchvision"
    )
    assert code == 0
    assert [shlex.split(line) for line in out.splitlines()] == [[
        "python", "-m", "pip", "install", "--index-url", "https://download.pytorch.org/whl/cu121",
        "torch==2.5.1+cu121", "torchvision==0.20.1+cu121",
    ]]  # fmt: skip
    lines = err.splitlines()
    assert lines[0] == "target: 3.11 (--python)"
    assert "  - cu121 is the newest torch 2.5.1 variant ≤ 12.2 whose wheels include sm_86" in lines
    assert err.index("why:") < err.index("alternatives:")


def test_json_document(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_plan(capsys, *AMPERE, *TARGET, "--torch", "2.5.1", "--json")
    document = json.loads(out)
    assert code == 0
    assert {"torch", "variant", "index_url", "packages", "commands", "reasons", "warnings"} <= set(
        document
    )
    assert document["torch"] == "2.5.1"
    assert document["packages"] == ["torch==2.5.1+cu121"]
    assert document["policy"] == "compat"
    assert document["alternatives"]
    assert document["commands"] == [
        "python -m pip install --index-url https://download.pytorch.org/whl/cu121"
        " torch==2.5.1+cu121"
    ]


@pytest.mark.parametrize(
    ("installer", "fragment", "follow_up"),
    [
        ("uv", "uv pip install --python python --index-url", None),
        ("uv-project", "[[tool.uv.index]]", "then run: uv sync"),
        ("requirements", "--index-url https://download.pytorch.org/whl/cu121", "pip install -r"),
        ("poetry", 'priority = "explicit"', "then run: poetry install"),
        ("pixi", 'index = "https://download.pytorch.org/whl/cu121"', "then run: pixi install"),
        ("conda", '      - "torch==2.5.1+cu121"', "conda env create -f environment.yml"),
    ],
)
def test_every_installer(
    capsys: pytest.CaptureFixture[str], installer: str, fragment: str, follow_up: str | None
) -> None:
    code, out, err = run_plan(
        capsys, *AMPERE, *TARGET, "--torch", "2.5.1", "--installer", installer
    )
    assert code == 0
    assert fragment in out
    if follow_up:
        assert follow_up in err and follow_up not in out
    assert "extra-index" not in out


def test_shells(capsys: pytest.CaptureFixture[str]) -> None:
    mirror = ["--index-url-base", "https://mirror.example/it's&co/whl"]
    _, out, _ = run_plan(capsys, "--gpu", "none", *TARGET, *PIP, *mirror, "--shell", "powershell")
    assert f"--index-url 'https://mirror.example/it''s&co/whl/cpu' torch=={NEWEST}+cpu" in out
    _, out, _ = run_plan(capsys, "--gpu", "none", *TARGET, *PIP, *mirror, "--shell", "cmd")
    assert f'--index-url "https://mirror.example/it\'s&co/whl/cpu" torch=={NEWEST}+cpu' in out


def test_nvidia_smi_output_file(capsys: pytest.CaptureFixture[str]) -> None:
    smi = str(NVIDIA_SMI / "h100-580-query-gpu.csv")
    # Pinned to a release whose cu130 and cu132 lists are confirmed: cu130 then shows that the
    # file's driver (CUDA 13.0) and GPU (sm_90) were read, whatever release is newest.
    code, out, _ = run_plan(
        capsys, "--nvidia-smi-output", smi, *TARGET, "--torch", "2.14.1", "--json"
    )
    document = json.loads(out)
    assert code == 0
    assert (document["torch"], document["variant"]) == ("2.14.1", "cu130")
    assert any("whose wheels include sm_90" in reason for reason in document["reasons"])


def test_index_url_base_from_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENVSETUP_INDEX_URL", "https://artifactory.example/api/pypi/pytorch")
    _, out, _ = run_plan(capsys, "--gpu", "none", *TARGET, "--json")
    assert json.loads(out)["index_url"] == "https://artifactory.example/api/pypi/pytorch/cpu"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--torch", "2.5.1; rm -rf ~"], "is not a valid PEP 440 version or specifier"),
        (["--with", "torchvision,numpy"], "envsetup pins only torchvision, torchaudio"),
        (["--gpu", "none", "--driver", "535.104.05"], "--gpu none contradicts --driver"),
        (["--driver", "five hundred"], "invalid machine flag value"),
        (["--compute-cap", "eight"], "invalid machine flag value"),
        (["--nvidia-smi-output", "/nonexistent/smi.txt"], "cannot read the nvidia-smi output"),
        (["--python", "three"], "neither a version like 3.11"),
        (["--gpu", "none", "--index-url-base", "http://mirror.example/whl"], "--allow-insecure"),
    ],
)
def test_usage_errors_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run_plan(capsys, *TARGET[:2], *argv)
    assert code == 2
    assert out == ""
    assert message in err
    assert "Traceback" not in err


def test_a_capability_no_known_gpu_has_is_refused_naming_its_neighbours(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # "99" reads as 9.9; before, the plan said the wheels "include sm_99"
    code, out, err = run_plan(capsys, *TARGET[:2], "--driver", "575.57.08", "--compute-cap", "99")
    assert code == 2
    assert out == "" and "sm_99" not in err
    assert "no GPU in matrices/gpus.toml has compute capability 9.9" in err
    assert "nearest to it: 8.9, 9.0, 10.0, 10.3" in err
    code, _, err = run_plan(capsys, *TARGET[:2], "--driver", "575.57.08", "--compute-cap", "sm90")
    assert code == 0, err


def test_impossible_request_exits_1_with_what_would_work(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run_plan(
        capsys, "--driver", "535.104.05", "--compute-cap", "12.0", *TARGET, "--torch", "2.5.1"
    )
    assert code == 1
    assert out == ""
    assert "no torch==2.5.1 build fits this machine" in err
    assert "cu124 lacks code for sm_120" in err
    # the newest build whose arch list is confirmed to carry sm_120 (cu129 2.9-2.13 is inferred)
    assert "hint: torch 2.11.0 (cu128) works here: --torch 2.11.0" in err


def test_target_interpreter_with_another_build_is_replaced(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    root = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    site = next(root.glob("lib/python3*/site-packages"))
    info = site / "torch-2.4.0+cu118.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: torch\nVersion: 2.4.0+cu118\n")
    code, out, err = run_plan(
        capsys,
        *AMPERE,
        *PIP,
        "--platform",
        "linux-x86_64",
        "--python",
        str(python),
        "--torch",
        "2.5.1",
    )
    assert code == 0
    argv = shlex.split(out.splitlines()[0])
    assert "--force-reinstall" in argv and argv[-1] == "torch==2.5.1+cu121"
    assert "replaces torch==2.4.0+cu118 installed in the target environment" in err


def _cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys; from envsetup.cli import main; code = main(sys.argv[1:]); "
        "assert 'torch' not in sys.modules, 'torch was imported'; sys.exit(code)"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_live_detection_never_imports_torch_and_honours_overrides() -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ENVSETUP_", "UV_", "CUDA_"))},
        "ENVSETUP_CUDA_DRIVER_VERSION": "535.104.05",
        "ENVSETUP_COMPUTE_CAP": "6.1",
    }
    result = _cli("plan", "--json", env=env)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["variant"] == "cu126"
    assert any("sm_61" in reason for reason in document["reasons"])


def test_bare_envsetup_runs_plan() -> None:
    result = _cli("--gpu", "none", "--platform", "macos-arm64", "--python", "3.12", *PIP)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"python -m pip install torch=={NEWEST}"


@pytest.mark.parametrize(("pin", "imported"), [((), "False"), (("--torch", ">=2.4"), "True")])
def test_only_pinned_plans_import_the_specifier_grammar(
    pin: tuple[str, ...], imported: str
) -> None:
    """packaging.specifiers (with packaging.tags) is ~15 ms of start-up: unpinned plans skip it."""
    code = (
        "import sys; from envsetup.cli import main; code = main(sys.argv[1:]); "
        "print('packaging.specifiers' in sys.modules, file=sys.stderr); sys.exit(code)"
    )
    argv = ["plan", "--json", *AMPERE, "--platform", "linux-x86_64", "--python", "3.11", *pin]
    done = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == imported
    assert json.loads(done.stdout)["variant"].startswith("cu")
