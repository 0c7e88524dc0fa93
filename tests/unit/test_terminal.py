"""Escape sequences in what the machine says (GPU names from nvidia-smi, NVML or a paste, text
relayed by verify) are shown as escapes by every human printer, never sent to the terminal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import fakes

from envsetup.integrations.pytest_devices import describe_gpus
from envsetup.model.machine import Gpu, Machine, Platform
from envsetup.terminal import printable

#: A GPU name that retitles the terminal window (OSC 0 ... BEL) and clears the screen (CSI 2J).
EVIL = "NVIDIA \x1b]0;pwned\x07H100 \x1b[2J80GB"
SHOWN = "NVIDIA \\x1b]0;pwned\\x07H100 \\x1b[2J80GB"
QUERY = (
    "index, name, driver_version, memory.total [MiB], compute_cap, uuid, pci.bus_id\n"
    f"0, {EVIL}, 580.159.04, 81559 MiB, 9.0, GPU-bcfee904-df4b-4b87-881e-903b769eea31, "
    "00000000:00:06.0\n"
)


def no_controls(text: str) -> None:
    assert not any(ord(char) < 0x20 and char not in "\n\t" for char in text), repr(text)
    assert not any(0x7F <= ord(char) <= 0x9F for char in text), repr(text)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (EVIL, SHOWN),
        ("a\rb\x00c\x7fd", "a\\rb\\x00c\\x7fd".replace("\\r", "\\x0d")),
        ("csi\x9b2J", "csi\\x9b2J"),  # the one-character C1 CSI
        ("left\u202eright", "left\\u202eright"),  # a bidirectional override
        ("two\nlines\tand é 中文", "two\nlines\tand é 中文"),  # kept as they are
    ],
)
def test_printable_writes_controls_as_escapes(text: str, shown: str) -> None:
    assert printable(text) == shown


def test_live_detect_shows_an_escaped_gpu_name_and_json_escapes_it(tmp_path: Path) -> None:
    """A fake nvidia-smi prints the name; before, `envsetup detect` wrote ESC ] 0 ... raw."""
    fakes.nvidia_driver(tmp_path)
    fakes.fake_tool(tmp_path / "bin", "nvidia-smi", outputs={"--query-gpu": QUERY, "": QUERY})
    human_run = fakes.run_cli_on_root(tmp_path, "detect")
    assert human_run.returncode == 0, human_run.stderr
    no_controls(human_run.stdout)
    assert "\\x1b]0;pwned\\x07H100" in human_run.stdout
    json_run = fakes.run_cli_on_root(tmp_path, "detect", "--json")
    no_controls(json_run.stdout)
    name = json.loads(json_run.stdout)["gpus"][0]["name"]
    assert name.startswith("NVIDIA \x1b]0;pwned\x07H100")  # the data itself is kept


def test_a_pasted_output_with_escapes_is_shown_escaped(tmp_path: Path) -> None:
    paste = tmp_path / "smi.txt"
    paste.write_text(QUERY)
    result = fakes.run_cli_on_root(tmp_path, "detect", "--nvidia-smi-output", str(paste))
    assert result.returncode == 0, result.stderr
    no_controls(result.stdout)
    assert "\\x1b]0;pwned" in result.stdout


def test_plugin_header_escapes_gpu_names() -> None:
    machine = Machine(platform=Platform("linux", "x86_64", "3.12"), gpus=(Gpu(0, name=EVIL),))
    assert describe_gpus(machine) == SHOWN
