"""Variant names: every spelling users and other tools write parses to one comparable value."""

from __future__ import annotations

import pytest

from envsetup import cli
from envsetup.model.variants import Variant, parse_variant, version_tuple


@pytest.mark.parametrize(
    ("text", "name", "cuda"),
    [
        ("cu121", "cu121", "12.1"),
        ("cu12.1", "cu121", "12.1"),
        ("cuda12.1", "cu121", "12.1"),
        ("CUDA-12.1", "cu121", "12.1"),
        ("cuda121", "cu121", "12.1"),
        ("cu80", "cu80", "8.0"),
        ("cu102", "cu102", "10.2"),
        ("cu130", "cu130", "13.0"),
        ("cu13.2", "cu132", "13.2"),
        (" cpu ", "cpu", None),
        ("XPU", "xpu", None),
        ("rocm6.2", "rocm6.2", None),
        ("rocm6.2.4", "rocm6.2.4", None),
        ("ROCm7.1", "rocm7.1", None),
    ],
)
def test_spellings_parse_to_the_canonical_name(text: str, name: str, cuda: str | None) -> None:
    variant = parse_variant(text)
    assert variant.name == name
    assert str(variant) == name
    assert variant.cuda == cuda


@pytest.mark.parametrize("text", ["", "cuda", "cu1", "gpu", "rocm", "rocm6", "cu12.1.1x", "mps"])
def test_unknown_names_say_what_was_expected(text: str) -> None:
    with pytest.raises(ValueError, match=r"expected cpu, xpu, cuXY"):
        parse_variant(text)


def test_cuda_orders_by_version_not_by_text() -> None:
    names = ["cu92", "cu130", "cu118", "cu102", "cu121", "cu80"]
    ordered = sorted(parse_variant(name) for name in names)
    assert [v.name for v in ordered] == ["cu80", "cu92", "cu102", "cu118", "cu121", "cu130"]
    assert parse_variant("cu130") > parse_variant("cu92")
    assert parse_variant("cu121") >= parse_variant("cu12.1")
    assert parse_variant("cu118") <= parse_variant("cu121")


def test_rocm_orders_by_version() -> None:
    assert parse_variant("rocm6.2") < parse_variant("rocm6.2.4") < parse_variant("rocm6.10")


def test_different_kinds_do_not_order() -> None:
    with pytest.raises(TypeError, match=r"cannot order cu121 against rocm6\.2"):
        _ = parse_variant("cu121") < parse_variant("rocm6.2")


def test_properties() -> None:
    assert parse_variant("cu128").cuda_major == 12
    assert parse_variant("rocm6.2").cuda_major is None
    assert not Variant("cpu").is_gpu
    assert Variant("xpu").is_gpu
    assert parse_variant("cu121") == Variant("cuda", (12, 1))


def test_version_tuple_compares_numbers_not_text() -> None:
    assert version_tuple("535.104.05", 3) == (535, 104, 5)
    assert version_tuple("13.0") > version_tuple("9.2")
    assert version_tuple("12") == version_tuple("12.0") == (12, 0)
    assert version_tuple("12.8.93")[:2] == (12, 8)


@pytest.mark.parametrize("text", ["cuda1.10", "cu0.10", "CU10.10", "cu12.10", "cuda-13.10"])
def test_a_two_digit_cuda_minor_is_refused_not_misread(text: str) -> None:
    """cuda1.10 used to become cu110, which is CUDA 11.0: no cuXY name spells a minor over 9."""
    with pytest.raises(ValueError, match=r"has no variant name .*expected cpu, xpu, cuXY"):
        parse_variant(text)


def test_every_numeric_cuda_spelling_reads_back_as_itself() -> None:
    """All majors and minors to 99, dotted and compact: the canonical name parses to the same
    variant, and a dotted spelling means exactly the version it says."""
    for prefix in ("cu", "cuda", "cuda-", "cu_"):
        for major in range(100):
            for minor in range(100):
                try:
                    variant = parse_variant(f"{prefix}{major}.{minor}")
                except ValueError:
                    assert minor > 9
                    continue
                assert variant.version == (major, minor)
                assert parse_variant(variant.name) == variant
        for number in range(1000):
            for digits in {f"{number}", f"{number:02d}", f"{number:03d}"}:
                try:
                    variant = parse_variant(prefix + digits)
                except ValueError:
                    continue
                assert parse_variant(variant.name) == variant


def test_the_cli_refuses_backend_cuda_1_10(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["plan", "--gpu", "none", "--platform", "linux-x86_64", "--python", "3.11"]
    assert cli.main([*argv, "--backend", "cuda1.10"]) == 2
    error = capsys.readouterr().err
    assert "--backend: unknown variant 'cuda1.10': CUDA 1.10 has no variant name" in error
    assert "cu110" not in error
