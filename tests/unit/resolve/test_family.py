"""The PyTorch-index family (`matrices/family.toml`): the data's shape, and `--with torchao` & co.
pinned to the release built for the chosen torch, from the same index, or refused clearly."""

from __future__ import annotations

import json
import sys

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from envsetup.cli import main
from envsetup.matrices import PLATFORMS, default_directory, load
from envsetup.matrices.family import FILE, RULES, load_family

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

FAMILY = load_family()
RELEASES = [release.version for release in load().releases]
AMPERE = ["--driver", "535.104.05", "--cuda", "12.2", "--compute-cap", "8.6"]
TARGET = ["--platform", "linux-x86_64", "--python", "3.11"]
#: What the issue asks envsetup to route beyond torchvision/torchaudio.
REQUIRED = (
    "torchao",
    "torchcodec",
    "torchdata",
    "torchtext",
    "fbgemm-gpu",
    "torchrec",
    "torchtune",
    "xformers",
    "triton",
    "pytorch-triton",
)


def run_plan(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["plan", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- the data ------------------------------------------------------------------------------------


def test_every_required_package_is_recorded() -> None:
    assert set(REQUIRED) <= set(FAMILY.packages)


def test_rows_have_only_known_keys() -> None:
    document = tomllib.loads((default_directory() / FILE).read_text())
    assert document["schema"] == 1
    for package in document["package"]:
        assert set(package) <= {"name", "rule", "platforms", "source", "notes", "pairs"}
        for pair in package["pairs"]:
            assert set(pair) <= {"version", "torch", "evidence", "confirmed", "source"}
            # a pair is either read from a wheel (evidence) or from a documented table (source)
            assert ("evidence" in pair) != ("source" in pair), pair
            assert pair.get("confirmed", True) == ("evidence" in pair), pair


@pytest.mark.parametrize("name", sorted(FAMILY.packages))
def test_package_rows(name: str) -> None:
    package = FAMILY.packages[name]
    assert package.rule in RULES
    assert package.source.startswith("https://")
    assert set(package.platforms) <= set(PLATFORMS)
    versions = [Version(pair.version) for pair in package.pairs]
    assert versions == sorted(versions), "pairs ascend by version"
    assert len(set(versions)) == len(versions), "no duplicates"
    if package.rule == "nightly":
        assert not package.pairs  # nothing stable pairs with it
        return
    assert package.pairs
    for pair in package.pairs:
        SpecifierSet(pair.torch)  # a PEP 440 specifier
        assert any(pair.admits(torch) for torch in RELEASES), f"{pair} admits no torch release"
        if pair.confirmed:
            # the wheel the fact was read from: this package at this version
            filename = pair.evidence.split()[0]
            assert filename.startswith(
                ("torch-" if package.rule == "torch-metadata" else name.replace("-", "_") + "-")
                + ("" if package.rule == "torch-metadata" else pair.version)
            ) or filename.startswith(f"{name}-{pair.version}"), pair.evidence
            assert "METADATA Requires-Dist" in pair.evidence
        else:
            assert pair.evidence.startswith("https://"), pair


def test_a_release_pairs_with_at_most_one_torch_minor_when_compiled() -> None:
    """A compiled package's release is built against one torch minor line: its pair never
    spans two (pure-Python torchdata 0.10+ and torchtune accept a floor; triton is what torch
    requires, and torch 2.10 and 2.11 both require triton 3.6.0)."""
    for package in FAMILY.packages.values():
        if package.name == "triton":
            continue
        for pair in package.pairs:
            minors = {torch.release[:2] for torch in RELEASES if pair.admits(torch)}
            if pair.torch.startswith(">=") and package.name in ("torchdata", "torchtune"):
                continue
            assert len(minors) == 1, (package.name, pair)


def test_triton_is_what_torch_itself_requires() -> None:
    triton = FAMILY.packages["triton"]
    assert triton.pair(Version("2.5.1")).version == "3.1.0"  # type: ignore[union-attr]
    assert triton.pair(Version("2.14.1")).version == "3.8.0"  # type: ignore[union-attr]
    assert triton.pair(Version("1.13.1")) is None  # torch 1.x bundled no triton dependency


# --- planning ------------------------------------------------------------------------------------


def test_with_torchao_pins_the_paired_build_from_the_same_index(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run_plan(capsys, *AMPERE, *TARGET, "--torch", "2.9.1", "--with", "torchao")
    assert code == 0, err
    command = out.splitlines()[0]
    assert command.startswith("python -m pip install --index-url https://download.pytorch.org/whl/")
    assert command.split()[-1] == "torchao==0.15.0"
    assert command.split()[-2].startswith("torch==2.9.1+cu12")
    assert "--extra-index-url" not in out
    assert "torchao 0.15.0 is the release built for torch 2.9.1" in err
    assert "unconfirmed" in err  # torchao's wheel does not pin torch: the table is the source


@pytest.mark.parametrize("installer", ["pip", "uv", "uv-project", "requirements"])
def test_family_pins_reach_every_output(capsys: pytest.CaptureFixture[str], installer: str) -> None:
    code, out, _ = run_plan(
        capsys,
        *AMPERE,
        *TARGET,
        "--torch",
        "2.9.1",
        "--with",
        "torchao,xformers",
        "--installer",
        installer,
    )
    assert code == 0, out
    assert "torchao==0.15.0" in out
    assert "xformers==0.0.33.post2" in out  # its wheel pins torch==2.9.1
    if installer == "uv":
        assert out.startswith("uv pip install")
        assert "--index-url https://download.pytorch.org/whl/cu12" in out.splitlines()[0]
    if installer == "uv-project":
        # routed to the PyTorch index like torch itself, never through PyPI
        assert "torchao = [{ index = " in out
        assert "xformers = [{ index = " in out


def test_json_plan_lists_the_family_pins(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_plan(
        capsys, "--gpu", "none", *TARGET, "--torch", "2.5.1", "--with", "fbgemm-gpu", "--json"
    )
    assert code == 0
    plan = json.loads(out)
    assert plan["packages"] == ["torch==2.5.1+cpu", "fbgemm-gpu==1.0.0"]
    assert plan["index_url"] == "https://download.pytorch.org/whl/cpu"


def test_unpinned_torch_walks_back_to_one_the_package_pairs_with(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run_plan(capsys, "--gpu", "none", *TARGET, "--with", "torchtext", "--json")
    assert code == 0
    plan = json.loads(out)
    assert plan["torch"] == "2.3.1"
    assert "torchtext==0.18.0" in plan["packages"]


def test_no_pair_is_refused_with_the_last_one(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_plan(
        capsys, "--gpu", "none", *TARGET, "--torch", "2.6.0", "--with", "torchtext"
    )
    assert code == 1, out
    assert "torchtext has no release for torch 2.6.0; the last is 0.18.0 for torch 2.3.*" in err


def test_a_torch_older_than_every_pair_names_the_first(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run_plan(
        capsys,
        "--gpu",
        "none",
        "--platform",
        "linux-x86_64",
        "--python",
        "3.10",
        "--torch",
        "1.12.1",
        "--with",
        "fbgemm-gpu",
    )
    assert code == 1
    assert "fbgemm-gpu has no release for torch 1.12.1; the first is 0.4.0 for torch 2.0.*" in err


def test_a_platform_without_wheels_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_plan(
        capsys, "--gpu", "none", "--platform", "macos-arm64", "--python", "3.12",
        "--torch", "2.5.1", "--with", "fbgemm-gpu",
    )  # fmt: skip
    assert code == 1
    assert "fbgemm-gpu has no wheels for macos-arm64 (has linux-x86_64)" in err


def test_pytorch_triton_is_nightly_only(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_plan(
        capsys, "--gpu", "none", *TARGET, "--torch", "2.5.1", "--with", "pytorch-triton"
    )
    assert code == 1
    assert "only on the nightly index" in err and "--with triton" in err
    code, out, _ = run_plan(
        capsys, "--gpu", "none", *TARGET, "--channel", "nightly", "--with", "pytorch-triton",
        "--json",
    )  # fmt: skip
    assert code == 0
    assert "pytorch-triton" in json.loads(out)["packages"]


def test_strict_policy_refuses_a_pair_only_a_table_gives(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run_plan(
        capsys, "--gpu", "none", *TARGET, "--torch", "2.9.1", "--with", "torchao",
        "--policy", "strict",
    )  # fmt: skip
    assert code == 1
    assert "only by its documented table" in err
    # xformers pins torch in its METADATA: confirmed, so strict plans it
    code, out, _ = run_plan(
        capsys, "--gpu", "none", *TARGET, "--torch", "2.9.1", "--with", "xformers",
        "--policy", "strict", "--json",
    )  # fmt: skip
    assert code == 0
    assert "xformers==0.0.33.post2" in json.loads(out)["packages"]


def test_an_unknown_name_lists_the_family(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_plan(capsys, "--gpu", "none", *TARGET, "--with", "numpy")
    assert code == 2
    assert "torchao" in err and "xformers" in err
