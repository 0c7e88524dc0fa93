"""Fuzz every parser of untrusted text: only the documented error type may escape.

Each parser reads something envsetup does not control (a pasted nvidia-smi output, a kernel
file, an index page, a wheel name, a flag value). The property is the same everywhere: the
result is well formed, or the parser raises exactly the error it documents (which the CLI turns
into one message). Runs are derandomized so CI sees the same few thousand cases every time;
`--hypothesis-seed N` explores others.
tests/property/test_nvidia_smi_property.py covers random text and text-level mutations of nvidia-smi
pastes; here the corpus is mutated at the byte level (encodings, bit flips, binary junk).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from support import fakes

from envsetup import cli
from envsetup.detect import amd, nvidia
from envsetup.detect.findings import Findings
from envsetup.detect.overrides import read_overrides
from envsetup.detect.smi import SmiReport, parse
from envsetup.errors import EnvsetupError, UsageError
from envsetup.matrices.index_listing import ListingError, file_names, parse_wheel, wheels
from envsetup.model.machine import PROBLEM_KINDS, Gpu
from envsetup.model.variants import parse_variant

SAMPLES = sorted(
    path.read_bytes() for path in fakes.SMI_SAMPLES.iterdir() if path.suffix != ".json"
)


def fuzz(examples: int) -> settings:
    return settings(
        settings.get_profile("envsetup-fuzz"),  # tests/conftest.py: derandomized unless seeded
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


@pytest.fixture(scope="module")
def root() -> Iterator[Path]:
    """One fake filesystem root reused by every example (a fixture per example is too slow)."""
    with tempfile.TemporaryDirectory(prefix="envsetup-fuzz-") as directory:
        yield Path(directory)


def assert_gpus_sound(gpus: tuple[Gpu, ...]) -> None:
    for gpu in gpus:
        assert gpu.index >= 0
        assert gpu.memory_mib is None or gpu.memory_mib >= 0


def assert_report_sound(report: SmiReport) -> None:
    assert report.format in {"table", "query", "xml", "list", "version", "error", "unknown"}
    assert_gpus_sound(report.gpus)
    for problem in report.problems:
        assert problem.kind in PROBLEM_KINDS
        assert "internal parser error" not in problem.message, problem


# --- nvidia-smi: the corpus mutated as bytes ---------------------------------------------------

ENCODINGS = ("utf-8", "utf-16", "latin-1", "cp1252", "utf-8-sig")


@st.composite
def corrupted_samples(draw: st.DrawFn) -> str:
    """A real output after what happens to files between a GPU box and a bug report."""
    data = bytearray(draw(st.sampled_from(SAMPLES)))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["flip", "junk", "cut", "crlf", "nul", "reencode"]))
        if action == "flip" and data:
            index = min(at, len(data) - 1)
            data[index] ^= 1 << draw(st.integers(0, 7))
        elif action == "junk":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif action == "cut":
            del data[at:]
        elif action == "crlf":
            data = bytearray(bytes(data).replace(b"\n", b"\r\n"))
        elif action == "nul":
            data[at:at] = b"\x00" * draw(st.integers(1, 8))
        else:
            text = bytes(data).decode("utf-8", "replace")
            data = bytearray(text.encode(draw(st.sampled_from(ENCODINGS)), "replace"))
    # As `detect --nvidia-smi-output` reads a file: bytes decoded with replacement.
    return bytes(data).decode("utf-8", "replace")


@fuzz(600)
@given(corrupted_samples())
def test_parse_survives_byte_level_corruption_of_real_outputs(text: str) -> None:
    assert_report_sound(parse(text))


@fuzz(200)
@given(st.binary(max_size=4000))
def test_parse_survives_binary_junk(data: bytes) -> None:
    assert_report_sound(parse(data.decode("utf-8", "replace")))


@fuzz(300)
@given(corrupted_samples())
def test_detect_cli_on_any_saved_output_is_a_machine_or_one_usage_line(
    root: Path, text: str
) -> None:
    """Exit 0 with a JSON machine, or exit 2 with exactly one `envsetup: error:` line."""
    saved = root / "smi.txt"
    saved.write_text(text, encoding="utf-8", errors="surrogatepass")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["detect", "--json", "--nvidia-smi-output", str(saved)])
    if code == 0:
        document = json.loads(out.getvalue())
        assert {error["kind"] for error in document["errors"]} <= set(PROBLEM_KINDS)
        assert err.getvalue() == ""
    else:
        assert code == 2, err.getvalue()
        lines = err.getvalue().splitlines()
        assert len(lines) == 1 and lines[0].startswith("envsetup: error: --nvidia-smi-output ")


@pytest.mark.parametrize(
    "garbage",
    [b"", b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4, b"hello\nworld\n", b"{]<xml"],
    ids=["empty", "binary", "text", "brackets"],
)
def test_detect_process_on_garbage_exits_2_with_one_clear_line(garbage: bytes) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "envsetup", "detect", "--nvidia-smi-output", "-"],
        input=garbage,
        capture_output=True,
        timeout=60,
        check=False,
        env={**os.environ, "ENVSETUP_DEBUG": ""},
    )
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    assert result.stdout == b""
    assert len(stderr.splitlines()) == 1, stderr
    assert stderr.startswith("envsetup: error: --nvidia-smi-output '-': ")
    assert "expected the complete output of `nvidia-smi`" in stderr


# --- kernel files: /sys and /proc driver versions, KFD topology ---------------------------------

KERNEL_TEXT = st.one_of(
    st.binary(max_size=300).map(lambda data: data.decode("latin-1")),
    st.text(max_size=200),
    st.sampled_from([fakes.PROC_VERSION_580, "580.159.04\n", "", "\n\n"]).flatmap(
        lambda base: st.text(max_size=20).map(lambda extra: base[: len(base) // 2] + extra)
    ),
)


def write_bytes(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8", "surrogateescape"))


@fuzz(400)
@given(KERNEL_TEXT, KERNEL_TEXT)
def test_driver_version_files_yield_a_version_or_none(
    root: Path, sys_text: str, proc_text: str
) -> None:
    write_bytes(root, "sys/module/nvidia/version", sys_text)
    write_bytes(root, "proc/driver/nvidia/version", proc_text)
    findings = Findings()
    for version in (nvidia.sys_module_driver(root, findings), nvidia.proc_driver(root, findings)):
        assert version is None or (version.strip() == version and version[0].isdigit())
    assert [item.fact for item in findings.evidence] == ["driver_version", "driver_version"]


PROPERTY_LINES = st.lists(
    st.one_of(
        st.tuples(
            st.sampled_from(
                ["gfx_target_version", "location_id", "domain", "size_in_bytes", "simd_count"]
            ),
            st.one_of(st.integers(-(2**70), 2**70).map(str), st.text(max_size=12)),
        ).map(" ".join),
        st.text(max_size=40),
    ),
    max_size=8,
).map("\n".join)


@fuzz(150)
@given(st.lists(st.tuples(PROPERTY_LINES, PROPERTY_LINES), min_size=1, max_size=3))
def test_kfd_topology_yields_sound_gpus(root: Path, nodes: list[tuple[str, str]]) -> None:
    topology = root / "kfd"
    for index, (properties, bank) in enumerate(nodes):
        write_bytes(topology, f"{amd.KFD_NODES}/{index}/properties", properties)
        write_bytes(topology, f"{amd.KFD_NODES}/{index}/mem_banks/0/properties", bank)
    try:
        gpus = amd.kfd_gpus(topology, 0, Findings())
    finally:
        shutil.rmtree(topology)
    assert gpus is not None
    assert_gpus_sound(gpus)
    assert all(gpu.arch is not None and gpu.arch.startswith("gfx") for gpu in gpus)


@fuzz(300)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "ENVSETUP_CUDA_DRIVER_VERSION",
                "ENVSETUP_CUDA_VERSION",
                "ENVSETUP_COMPUTE_CAPABILITY",
                "ENVSETUP_BACKEND",
                "CONDA_OVERRIDE_CUDA",
                "UV_TORCH_BACKEND",
                "LTT_PYTORCH_COMPUTATION_BACKEND",
                "TORCH_CUDA_ARCH_LIST",
            ]
        ),
        st.text(max_size=30),
        max_size=4,
    )
)
def test_override_variables_are_read_or_a_usage_error(environ: dict[str, str]) -> None:
    findings = Findings()
    try:
        chosen = read_overrides(environ, findings)
    except UsageError as error:
        assert str(error).split("=", 1)[0] in environ
        return
    for override in chosen.values():
        assert override.variable in environ


# --- index listings, wheel file names, variant names, PEP 440 flags ---------------------------

WHEEL_NAMES = st.one_of(
    st.builds(
        "{}-{}{}-{}-{}-{}.whl".format,
        st.sampled_from(["torch", "torchvision", "Torch_Audio", "", "x-y"]),
        st.sampled_from(["2.5.1", "2.13.0", "1.12.1", "0.20.1", "v2", "2.5.1.dev20240101", "!!"]),
        st.sampled_from(["", "+cu121", "+cpu", "+rocm6.2.4", "+cu_13", "+", "+xpu.1"]),
        st.sampled_from(["cp311", "cp313", "py3", "cp3", "cpXY", ""]),
        st.sampled_from(["cp311", "cp313t", "none", "abi3", ""]),
        st.sampled_from(
            [
                "manylinux_2_28_x86_64",
                "win_amd64",
                "macosx_11_0_arm64",
                "linux_aarch64",
                "any",
                "manylinux2014_x86_64.manylinux_2_17_x86_64",
                "",
            ]
        ),
    ),
    st.text(max_size=60).map(lambda text: text + ".whl"),
    st.text(max_size=60),
)


@fuzz(600)
@given(WHEEL_NAMES)
def test_wheel_names_parse_to_facts_or_none(name: str) -> None:
    wheel = parse_wheel(name)
    if wheel is None:
        return
    assert wheel.filename == name
    assert wheel.variant is None or parse_variant(wheel.variant).name == wheel.variant.lower()
    assert all(python[0].isdigit() and "." in python for python in wheel.pythons)


def anchors(names: list[str]) -> str:
    links = "".join(f'<a href="{name}#sha256=00">{name}</a>\n' for name in names)
    return f"<!DOCTYPE html><html><body>\n{links}</body></html>"


LISTINGS = st.one_of(
    st.lists(WHEEL_NAMES, max_size=6).map(anchors),
    st.lists(WHEEL_NAMES, max_size=6).map(
        lambda names: json.dumps({"files": [{"filename": name} for name in names]})
    ),
    st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10)),
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
        ),
        max_leaves=8,
    ).map(json.dumps),
    st.text(max_size=300),
    st.text(st.sampled_from("<>a=\"'/ href{}[]:,files"), max_size=200),
)


@fuzz(600)
@given(LISTINGS, st.sampled_from([None, "text/html", "application/vnd.pypi.simple.v1+json"]))
def test_listings_give_wheels_or_a_listing_error(text: str, content_type: str | None) -> None:
    try:
        names = file_names(text, content_type)
        found = wheels(text, content_type)
    except ListingError as error:
        assert str(error)
        return
    assert all(isinstance(name, str) for name in names)
    assert {wheel.filename for wheel in found} <= set(names)


@fuzz(500)
@given(
    st.one_of(
        st.text(max_size=20),
        st.from_regex(r"(cu|cuda|rocm|CU|ROCm)\s?\d{0,6}(\.\d{0,4}){0,3}", fullmatch=True),
    )
)
@example("cu0.10")  # was CUDA 0.10, named cu010, read back as 1.0
@example("cuda1.10")  # was named cu110: CUDA 11.0
def test_variant_names_parse_or_raise_value_error(text: str) -> None:
    try:
        variant = parse_variant(text)
    except ValueError as error:
        assert "expected cpu, xpu" in str(error)
        return
    assert parse_variant(variant.name) == variant


PEP440ISH = st.one_of(
    st.text(max_size=30),
    st.text(st.sampled_from("0123456789.*!+<>=~,; torchvisionaudio[]@rcdevpost-_ "), max_size=30),
    st.from_regex(
        r"(torch)?\s*(==|>=|<=|~=|!=|<|>|===)?\s*\d{1,5000}(\.\d{1,3}){0,3}", fullmatch=True
    ),
)


@fuzz(800)
@given(PEP440ISH, PEP440ISH)
@example("2" * 5000, "torchvision")  # beyond int()'s digit limit: was a ValueError traceback
@example("==" + "9" * 4400, "torchvision>=" + "1" * 4400)
def test_request_flags_are_a_request_or_a_usage_error(torch: str, companion: str) -> None:
    from envsetup.model.machine import Machine, Platform
    from envsetup.model.plan import Request
    from envsetup.resolve import resolve
    from envsetup.resolve.request import parse_companions, parse_torch_spec

    try:
        parse_torch_spec(torch)
        parse_companions([companion])
        plan = resolve(Machine(platform=Platform("linux", "x86_64", "3.11")), Request(torch=torch))
    except EnvsetupError as error:  # UsageError (bad text) or NoCompatibleBuild (no release)
        assert error.exit_code in (1, 2) and str(error)
        return
    assert plan.torch and plan.packages
