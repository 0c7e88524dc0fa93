"""parse() must never raise, whatever a user pastes: arbitrary text and mangled real outputs.

`parse` has a last-resort guard that turns an exception into an "internal parser error"
problem; these tests fail on that message too, so the guard cannot hide a bug.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envsetup.detect.smi import SmiReport, parse
from envsetup.model.machine import PROBLEM_KINDS

CORPUS = Path(__file__).parents[1] / "data" / "nvidia-smi"
SAMPLES = sorted(
    p.read_text(encoding="utf-8") for p in CORPUS.iterdir() if p.suffix not in (".json", ".md")
)
FORMATS = {"table", "query", "xml", "list", "version", "error", "unknown"}
BOUNDED = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_sound(report: SmiReport) -> None:
    assert isinstance(report, SmiReport)
    assert report.format in FORMATS
    for problem in report.problems:
        assert problem.kind in PROBLEM_KINDS
        assert "internal parser error" not in problem.message
    for gpu in report.gpus:
        assert gpu.memory_mib is None or gpu.memory_mib >= 0
        assert gpu.index >= 0


# Characters nvidia-smi output is made of, so random text often looks like a piece of it.
ALPHABET = st.sampled_from(list("|+-=: \n\t.,/()[]<>!%0123456789MiBGPUNVIDAesrionCUDAx\r>`$#"))
FRAGMENTS = st.sampled_from(
    [
        "| NVIDIA-SMI ",
        "Driver Version: ",
        "KMD Version: ",
        "CUDA Version: ",
        "|   0  ",
        " 00000000:00:06.0 ",
        "MiB / ",
        "MiB |",
        "MIG devices:",
        "Processes:",
        "GPU 0: ",
        "(UUID: GPU-",
        "  MIG 1g.10gb     Device  0: ",
        "<nvidia_smi_log>",
        "</gpu>",
        "<!DOCTYPE x [",
        "==============NVSMI LOG==============\n",
        "GPU 00000000:01:00.0\n",
        "    FB Memory Usage\n        Total : ",
        "index, name, memory.total [MiB]\n",
        "NVIDIA-SMI version  : ",
        "Failed to initialize NVML: ",
        "N/A",
        "[Not Supported]",
        "\n",
    ]
)
NOISY_TEXT = st.lists(st.one_of(st.text(ALPHABET, max_size=20), FRAGMENTS), max_size=40).map(
    "".join
)


@BOUNDED
@given(st.text(max_size=3000))
def test_parse_never_raises_on_arbitrary_text(text: str) -> None:
    assert_sound(parse(text))


@BOUNDED
@given(NOISY_TEXT)
def test_parse_never_raises_on_text_made_of_nvidia_smi_pieces(text: str) -> None:
    assert_sound(parse(text))


@st.composite
def mutated_samples(draw: st.DrawFn) -> str:
    """A real sample after a few of the accidents that happen to pastes."""
    text: str = draw(st.sampled_from(SAMPLES))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["delete", "insert", "join", "truncate", "duplicate"]))
        if action == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 200)) :]
        elif action == "insert":
            text = text[:at] + draw(st.one_of(FRAGMENTS, st.text(max_size=30))) + text[at:]
        elif action == "join":
            lines = text.split("\n")
            cut = min(at, max(len(lines) - 1, 0))
            text = "\n".join([*lines[:cut], " ".join(lines[cut : cut + 3]), *lines[cut + 3 :]])
        elif action == "truncate":
            text = text[:at]
        else:
            lines = text.split("\n")
            cut = min(at, len(lines))
            text = "\n".join([*lines[:cut], *lines[cut - 1 : cut], *lines[cut:]])
    return text


@BOUNDED
@given(mutated_samples())
def test_parse_never_raises_on_mutated_corpus_samples(text: str) -> None:
    assert_sound(parse(text))
