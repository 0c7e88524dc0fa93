"""One build for a fleet: machine descriptions, the merged plan, the scheduler recipes of the
docs/fleets.md run against fake `srun`/`kubectl`, merged verify reports and the fleet's CI jobs."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from support import fakes

from envsetup.cli import main
from envsetup.matrices import load
from envsetup.model.machine import Gpu, Machine, Platform
from envsetup.verify import VerifyReport
from envsetup.verify.verdicts import Check

ROOT = Path(__file__).parents[3]
LINUX = Platform(os="linux", arch="x86_64", python="3.11", libc="glibc 2.35")


def node(name: str, driver: str, capability: str, gpus: int = 1, **platform: str) -> Machine:
    return Machine(
        hostname=name,
        platform=Platform(**{**LINUX.__dict__, **platform}),
        driver_version=driver,
        gpus=tuple(
            Gpu(
                index=i,
                name=f"GPU {capability}",
                compute_capability=capability,
                uuid=f"GPU-{name}-{i}",
            )
            for i in range(gpus)
        ),
    )


#: The issue's fleet: a TITAN V on driver 515, an 8x H100 node on 565, an RTX 3080 on 580.
FLEET = {
    "titan-v01": node("titan-v01", "515.65.01", "7.0"),
    "h100-01": node("h100-01", "565.57.01", "9.0", gpus=8),
    "rtx3080-01": node("rtx3080-01", "580.65.06", "8.6"),
}


def write_fleet(folder: Path, machines: dict[str, Machine]) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, machine in machines.items():
        path = folder / f"{name}.json"
        path.write_text(json.dumps(machine.to_json(), indent=2))
        paths.append(str(path))
    return paths


def plan_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    assert main(["plan", *argv, "--json"]) == 0
    document: dict[str, object] = json.loads(capsys.readouterr().out)
    return document


def test_the_issue_fleet_gets_one_cuda_11_build_covering_every_gpu(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = write_fleet(tmp_path, FLEET)
    plan = plan_json(capsys, *(f"--machine={path}" for path in files))
    variant = str(plan["variant"])
    assert variant.startswith("cu11"), plan
    archs = load().arch_list(str(plan["torch"]), variant, "linux-x86_64")
    assert archs is not None
    assert all(archs.covers(cc) for cc in ("7.0", "8.6", "9.0"))
    reasons = "\n".join(map(str, plan["reasons"]))  # type: ignore[call-overload]
    assert "3 machine(s)" in reasons
    assert f"{variant}: node titan-v01's driver 515.65.01 runs CUDA ≤ 11.7" in reasons
    assert "sm_70 (node titan-v01)" in reasons and "sm_90 (node h100-01)" in reasons
    alternatives = "\n".join(map(str, plan["alternatives"]))  # type: ignore[call-overload]
    without = re.search(r"without node titan-v01: torch (\S+) (cu\d+)", alternatives)
    assert without is not None, alternatives
    assert load().release(without[1]).version > load().release(str(plan["torch"])).version
    assert "upgrading node titan-v01's driver 515.65.01 to ≥ " in alternatives


def test_a_windows_and_a_linux_machine_are_refused_naming_both(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    machines = {
        "lab-linux": node("lab-linux", "580.65.06", "8.6"),
        "lab-win": node("lab-win", "580.88", "8.9", os="windows", arch="amd64"),
    }
    write_fleet(tmp_path, machines)
    assert main(["plan", "--machines", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert "mixes platforms" in error
    assert "linux-x86_64: lab-linux" in error and "windows-amd64: lab-win" in error


def test_duplicates_count_once_across_files_and_json_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = write_fleet(tmp_path / "a", {"titan-v01": FLEET["titan-v01"]})
    lines = tmp_path / "nodes.jsonl"
    lines.write_text(
        "\n".join(json.dumps(m.to_json()) for m in (FLEET["titan-v01"], FLEET["h100-01"])) + "\n"
    )
    plan = plan_json(capsys, "--machine", files[0], "--machine", str(lines), "--machine", files[0])
    assert "one build for 2 machine(s) of the fleet: titan-v01, h100-01" in plan["reasons"]  # type: ignore[operator]


def test_a_saved_nvidia_smi_output_is_a_machine_named_after_its_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    smi = fakes.SMI_SAMPLES / "h100-580-table.txt"
    files = write_fleet(tmp_path, {"titan-v01": FLEET["titan-v01"]})
    plan = plan_json(capsys, "--machine", str(smi), "--machine", files[0], "--python", "3.11")
    reasons = "\n".join(map(str, plan["reasons"]))  # type: ignore[call-overload]
    assert "h100-580-table" in reasons and "titan-v01" in reasons


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"platform": ', "line 1 is not JSON"),
        ('{"schema_version": 99, "platform": {}}', "schema_version 99"),
        ('{"ok": false, "checks": []}', "verify --json` report, not a machine"),
        ('{"gpus": []}', "not a machine description"),
        ("", "is empty"),
    ],
)
def test_bad_descriptions_are_usage_errors_saying_what_was_expected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    assert main(["plan", "--machine", str(path)]) == 2
    assert expected in capsys.readouterr().err


def test_machine_files_refuse_the_single_machine_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = write_fleet(tmp_path, {"titan-v01": FLEET["titan-v01"]})
    assert main(["plan", "--machine", files[0], "--driver", "580.65.06"]) == 2
    assert "--driver would contradict them" in capsys.readouterr().err


def test_detect_json_carries_the_schema_version_and_the_node_name(tmp_path: Path) -> None:
    env = fakes.environ_with_path(tmp_path / "bin", SLURMD_NODENAME="gpu-a17")
    result = run_envsetup(["detect", "--json"], env)
    document = json.loads(result.stdout)
    assert document["schema_version"] == 1
    assert document["hostname"] == "gpu-a17"


# --------------------------------------------------------------------------- scheduler recipes


def run_envsetup(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "envsetup", *argv],
        env={**env, "ENVSETUP_CACHE_DIR": os.environ["ENVSETUP_CACHE_DIR"]},
        capture_output=True,
        text=True,
        check=False,
    )


def fake_node(root: Path, name: str, driver: str, gpus: list[tuple[str, str]]) -> Path:
    """A node's own PATH folder: its nvidia-smi answers for its GPUs and driver."""
    rows = [
        f"{i}, {gpu}, {driver}, 16384 MiB, {cc}, GPU-{name}-{i}, 00000000:0{i}:00.0"
        for i, (gpu, cc) in enumerate(gpus)
    ]
    header = "index, name, driver_version, memory.total [MiB], compute_cap, uuid, pci.bus_id"
    folder = root / "nodes" / name
    fakes.fake_tool(folder, "nvidia-smi", stdout="\n".join([header, *rows]) + "\n")
    return folder


def nodes_of_the_issue(root: Path) -> dict[str, dict[str, Path]]:
    """Partition (or node pool) -> node name -> its PATH folder."""
    return {
        "volta": {"titan-v01": fake_node(root, "titan-v01", "515.65.01", [("TITAN V", "7.0")])},
        "hopper": {
            "h100-01": fake_node(
                root, "h100-01", "565.57.01", [("NVIDIA H100 80GB HBM3", "9.0")] * 8
            )
        },
        "ampere": {
            "rtx3080-01": fake_node(root, "rtx3080-01", "580.65.06", [("RTX 3080", "8.6")]),
            "rtx3080-02": fake_node(root, "rtx3080-02", "580.65.06", [("RTX 3080", "8.6")]),
        },
    }


#: Runs each task of an `srun` the way Slurm does: once per node of the partition, with
#: SLURMD_NODENAME set and the node's own tools on PATH; --output's %N names each node's file.
FAKE_SRUN = """
import json, os, subprocess, sys
nodes = json.load(open(os.environ["FAKE_NODES"]))
args, partition, count, output = sys.argv[1:], None, None, None
while args and args[0].startswith("-"):
    flag, _, value = args.pop(0).partition("=")
    if flag == "--partition": partition = value
    elif flag == "--nodes": count = int(value)
    elif flag == "--output": output = value
code = 0
for task, (name, path) in enumerate(list(nodes[partition].items())[:count]):
    env = dict(os.environ, SLURMD_NODENAME=name, SLURM_PROCID=str(task))
    env["PATH"] = path + os.pathsep + env["PATH"]
    out = open(output.replace("%N", name), "w") if output else None
    code |= subprocess.run(args, env=env, stdout=out).returncode
sys.exit(code)
"""

#: `kubectl get pods -l SELECTOR -o name` lists one pod per node of the pool; `kubectl exec POD
#: -- CMD` runs CMD on the pod's node, with ENVSETUP_HOSTNAME set as the downward API would.
FAKE_KUBECTL = """
import json, os, subprocess, sys
nodes = json.load(open(os.environ["FAKE_NODES"]))
args = sys.argv[1:]
if args[:2] == ["get", "pods"]:
    pool = args[args.index("-l") + 1].split("=")[1]
    print("\\n".join(f"pod/probe-{name}" for name in nodes[pool]))
    sys.exit(0)
assert args[0] == "exec" and args[2] == "--", args
name = args[1].removeprefix("pod/probe-")
path = next(pool[name] for pool in nodes.values() if name in pool)
env = dict(os.environ, ENVSETUP_HOSTNAME=name, PATH=path + os.pathsep + os.environ["PATH"])
sys.exit(subprocess.run(args[3:], env=env).returncode)
"""


def recipe(title: str) -> str:
    """The docs/fleets.md shell block starting `# {title}`: the tests run what users copy."""
    readme = (ROOT / "docs" / "fleets.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```sh\n(.*?)```", readme, re.DOTALL)
    found = [block for block in blocks if block.startswith(f"# {title}")]
    assert len(found) == 1, f"docs/fleets.md has no ```sh block starting with '# {title}'"
    return found[0]


def scheduler(tmp_path: Path) -> dict[str, str]:
    """A PATH with fake srun and kubectl, a real `envsetup` and the shell's basic commands."""
    nodes = nodes_of_the_issue(tmp_path)
    (tmp_path / "nodes.json").write_text(
        json.dumps(
            {pool: {n: str(p) for n, p in members.items()} for pool, members in nodes.items()}
        )
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, source in (("srun", FAKE_SRUN), ("kubectl", FAKE_KUBECTL)):
        script = bin_dir / name
        script.write_text(f"#!{sys.executable}\n{source}")
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
    entry = bin_dir / "envsetup"
    entry.write_text(f'#!/bin/sh\nexec {sys.executable} -m envsetup "$@"\n')
    entry.chmod(entry.stat().st_mode | stat.S_IXUSR)
    env = fakes.environ_with_path(bin_dir, FAKE_NODES=str(tmp_path / "nodes.json"))
    for tool in ("mkdir", "bash"):
        link = tmp_path / ".shell-commands" / tool
        if not link.exists():
            link.symlink_to(os.path.realpath(_which(tool)))
    env["PYTHONPATH"] = str(ROOT)
    env["ENVSETUP_CACHE_DIR"] = os.environ["ENVSETUP_CACHE_DIR"]
    return env


def _which(tool: str) -> str:
    import shutil

    found = shutil.which(tool)
    assert found is not None
    return found


def test_the_slurm_recipe_plans_builds_and_verifies_every_partition(tmp_path: Path) -> None:
    env = scheduler(tmp_path)
    script = recipe("Slurm")
    # Tests never reach the internet: the venv step makes a bare environment instead, so the
    # verify step finds no torch on any node and the merged verdict must name every one.
    script = re.sub(
        r"^envsetup venv .*$", f'{sys.executable} -m venv "$SHARED_ENV"', script, flags=re.M
    )
    env.update(PARTITIONS="volta hopper ampere", NODES="2", SHARED_ENV=str(tmp_path / "shared"))
    result = subprocess.run(
        ["bash", "-c", script], check=False, cwd=tmp_path, env=env, capture_output=True, text=True
    )
    collected = sorted(path.stem for path in (tmp_path / "fleet").iterdir())
    assert collected == ["h100-01", "rtx3080-01", "rtx3080-02", "titan-v01"], result.stderr
    out = result.stdout
    # The nodes run this interpreter, so the build depends on its Python: derive it from the data.
    from envsetup.model.plan import Request
    from envsetup.resolve.fleet import load as load_fleet
    from envsetup.resolve.fleet import plan_fleet

    fleet = load_fleet([], [str(tmp_path / "fleet")], smi_platform=LINUX)
    expected = plan_fleet(fleet, Request())
    assert f"torch=={expected.torch}+{expected.variant}" in out, out
    # The plan's explanation goes to stderr, its command and the verdicts to stdout.
    assert "4 machine(s)" in result.stderr
    if expected.variant.startswith("cu"):
        assert "node titan-v01's driver 515.65.01" in result.stderr
    for name in collected:
        assert re.search(rf"FAIL\s+{name}\s+no torch", out), result.stderr
    assert "4 of 4 nodes failed" in out
    fix = re.search(r"fix for all nodes: (.*)", out)
    assert fix is not None and "shared/bin/python -m pip install" in fix[1]
    assert f"torch=={expected.torch}+{expected.variant}" in fix[1]
    assert result.returncode == 1  # `verify --merge` fails when any node does


def test_the_kubernetes_recipe_collects_one_description_per_node(tmp_path: Path) -> None:
    env = scheduler(tmp_path)
    (tmp_path / "fleet").mkdir()
    env.update(SELECTOR="pool=ampere")
    result = subprocess.run(
        ["bash", "-e", "-c", recipe("Kubernetes")],
        check=False,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("python -m pip install ")  # the command; the why on stderr
    assert "one build for 2 machine(s) of the fleet: rtx3080-01, rtx3080-02" in result.stderr
    assert "sm_86 (node rtx3080-01, rtx3080-02)" in result.stderr


# --------------------------------------------------------------------------- verify --merge


def report(name: str, machine: Machine, checks: list[Check]) -> dict[str, object]:
    return VerifyReport(
        python="/shared/env/bin/python",
        python_version="3.11.9",
        torch="2.8.0+cu128",
        variant="cu128",
        cuda="12.8",
        devices=(),
        checks=tuple(checks),
        machine=machine,
    ).to_json()


def test_merged_reports_name_each_failing_node_and_give_one_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    passed = Check("gpu-code", True, "the wheel has sm_90")
    missing = Check("gpu-code", False, "cu128 has no sm_70 kernels", fix="reinstall")
    driver = Check("driver", False, "cu128 needs driver ≥ 525.60.13", fix="reinstall")
    (tmp_path / "h100-01.json").write_text(
        json.dumps(report("h100-01", FLEET["h100-01"], [passed]))
    )
    both = [
        report("titan-v01", FLEET["titan-v01"], [missing, driver]),
        report("rtx3080-01", FLEET["rtx3080-01"], [passed]),
    ]
    (tmp_path / "more.json").write_text("\n".join(json.dumps(item) for item in both))
    assert main(["verify", "--merge", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert re.search(r"FAIL\s+titan-v01", out) and re.search(r"ok\s+h100-01", out)
    assert "driver: cu128 needs driver ≥ 525.60.13" in out
    assert "1 of 3 nodes failed: titan-v01" in out
    assert re.search(r"fix for all nodes: /shared/env/bin/python -m pip install .*cu11\d", out)
    assert main(["verify", "--merge", str(tmp_path), "--json"]) == 1
    merged = json.loads(capsys.readouterr().out)
    assert merged["failed"] == ["titan-v01"]
    assert sorted(merged["passed"]) == ["h100-01", "rtx3080-01"]


def test_merge_refuses_what_is_not_a_verify_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "node.json"
    path.write_text(json.dumps(FLEET["h100-01"].to_json()))
    assert main(["verify", "--merge", str(path)]) == 2
    assert "not an `envsetup verify --json` report" in capsys.readouterr().err


# --------------------------------------------------------------------------- CI


def test_ci_jobs_test_the_fleet_build_once_per_gpu_kind_on_its_runner(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_fleet(tmp_path, FLEET)
    argv = ["matrix", "--format", "github", "--machines", str(tmp_path)]
    assert main([*argv, "--runner-label", "sm_90=gpu-h100", "--runner-label", "7.0=v100"]) == 0
    jobs = json.loads(capsys.readouterr().out)["include"]
    plan = plan_json(capsys, "--machines", str(tmp_path))
    assert {(job["torch"], job["variant"]) for job in jobs} == {(plan["torch"], plan["variant"])}
    assert sorted(job["runner"] for job in jobs) == ["gpu-h100", "gpu-sm_86", "v100"]
    assert main([*argv, "--runner-label", "hopper"]) == 2
    assert "expected one GPU kind and a label" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("written", "read"), [('"sm_86"', "8.6"), ("8.6", "8.6"), ('"86"', "8.6"), ('"12.0"', "12.0")]
)
def test_a_described_gpus_capability_is_read_in_any_spelling(written: str, read: str) -> None:
    """ "sm_86" used to be read as sm_00 (no build fits) and 8.6 as an internal error."""
    from envsetup.resolve.fleet import machine_from_json

    document = json.loads(
        '{"platform": {"os": "linux", "arch": "x86_64", "python": "3.11"}, '
        f'"gpus": [{{"index": 0, "compute_capability": {written}}}]}}'
    )
    machine = machine_from_json(document, "node.json")
    assert machine.gpus[0].compute_capability == read


def test_a_described_gpus_bad_capability_is_a_usage_error() -> None:
    from envsetup.errors import UsageError
    from envsetup.resolve.fleet import machine_from_json

    document = {
        "platform": {"os": "linux", "arch": "x86_64", "python": "3.11"},
        "gpus": [{"index": 0, "compute_capability": "ab"}],
    }
    with pytest.raises(UsageError, match=r"node\.json: .*'ab' is not a compute capability"):
        machine_from_json(document, "node.json")


def test_a_described_gpu_of_an_unknown_vendor_is_a_usage_error() -> None:
    """An "intel" GPU used to be kept as a GPU neither the NVIDIA nor the AMD rules counted."""
    from envsetup.errors import UsageError
    from envsetup.resolve.fleet import machine_from_json

    document = {
        "platform": {"os": "linux", "arch": "x86_64", "python": "3.11"},
        "gpus": [{"index": 0, "vendor": "intel"}],
    }
    with pytest.raises(UsageError, match="vendor 'intel'; expected nvidia or amd"):
        machine_from_json(document, "node.json")
    document["gpus"] = [{"index": 0, "vendor": "amd", "arch": "gfx90a"}]
    assert machine_from_json(document, "node.json").amd_gpus[0].arch == "gfx90a"
