"""The nvidia-smi parser against a corpus of real outputs, each failure text and paste noise.

Corpus: tests/data/nvidia-smi/<name>.<txt|xml|csv> with <name>.expected.json beside it; the
"source" field says where the text came from.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from envsetup.detect.smi import SmiReport, parse
from envsetup.detect.smi.report import MAX_CHARS
from envsetup.model.machine import PROBLEM_KINDS, Gpu

CORPUS = Path(__file__).parents[2] / "data" / "nvidia-smi"
EXPECTED = sorted(CORPUS.glob("*.expected.json"))


def sample_for(expected: Path) -> Path:
    stem = expected.name[: -len(".expected.json")]
    (sample,) = (p for p in CORPUS.glob(f"{stem}.*") if p != expected)
    return sample


def read(name: str) -> str:
    return (CORPUS / name).read_text(encoding="utf-8")


def summary(report: SmiReport) -> dict[str, Any]:
    """The report in the corpus' expected.json shape."""
    gpus = []
    for gpu in report.gpus:
        fields = asdict(gpu)
        del fields["vendor"], fields["arch"]
        gpus.append(fields)
    document = {
        "format": report.format,
        "driver_version": report.driver_version,
        "cuda_version": report.cuda_version,
        "nvml_version": report.nvml_version,
        "gpu_count": len(report.gpus),
        "gpus": gpus,
        "problems": [problem.kind for problem in report.problems],
    }
    return json.loads(json.dumps(document))  # tuples -> lists, as in the JSON files


@pytest.mark.parametrize("expected", EXPECTED, ids=[p.name.split(".")[0] for p in EXPECTED])
def test_corpus_sample_parses_to_its_expected_values(expected: Path) -> None:
    want = json.loads(expected.read_text(encoding="utf-8"))
    assert want.pop("source"), "every sample names its source"
    report = parse(sample_for(expected).read_text(encoding="utf-8"))
    assert summary(report) == want


def test_corpus_is_varied() -> None:
    wants = [json.loads(p.read_text(encoding="utf-8")) for p in EXPECTED]
    formats = {want["format"] for want in wants}
    assert formats >= {"table", "query", "xml", "list", "version", "error"}
    assert all(sample_for(p).exists() for p in EXPECTED)


def test_every_problem_has_a_known_kind_a_message_and_a_hint() -> None:
    for expected in EXPECTED:
        for problem in parse(sample_for(expected).read_text(encoding="utf-8")).problems:
            assert problem.kind in PROBLEM_KINDS
            assert problem.message
            assert problem.hint


# --- failure texts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (
            "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
            "Make sure that the latest NVIDIA driver is installed and running.\n",
            "no_driver",
        ),
        ("Failed to initialize NVML: Driver/library version mismatch\n", "version_mismatch"),
        ("No devices were found\n", "no_devices"),
        ("bash: nvidia-smi: command not found\n", "not_found"),
        ("/bin/sh: 1: nvidia-smi: not found\n", "not_found"),
        (
            "'nvidia-smi' is not recognized as an internal or external command,\n"
            "operable program or batch file.\n",
            "not_found",
        ),
        (
            "nvidia-smi : The term 'nvidia-smi' is not recognized as the name of a cmdlet, "
            "function, script file, or operable program.\n",
            "not_found",
        ),
        ("Failed to initialize NVML: Insufficient Permissions\n", "permission_denied"),
        ("-bash: /usr/bin/nvidia-smi: Permission denied\n", "permission_denied"),
        ("Failed to initialize NVML: Unknown Error\n", "no_driver"),
        (
            "NVIDIA-SMI couldn't find libnvidia-ml.so library in your system. Please make sure "
            "that the NVIDIA Display Driver is properly installed and present in your system.\n",
            "no_driver",
        ),
    ],
)
def test_failure_text_is_classified(text: str, kind: str) -> None:
    report = parse(text)
    assert report.format == "error"
    assert [problem.kind for problem in report.problems] == [kind]
    (problem,) = report.problems
    assert text.splitlines()[0].strip()[:40] in problem.message  # says what it found
    assert problem.hint
    assert report.driver_version is None
    assert report.gpus == ()


def test_mismatch_library_version_is_not_the_driver() -> None:
    report = parse(
        "Failed to initialize NVML: Driver/library version mismatch\n"
        "NVML library version: 535.171\n"
    )
    assert report.format == "error"
    assert report.driver_version is None
    assert report.nvml_version == "535.171"
    (problem,) = report.problems
    assert problem.kind == "version_mismatch"
    assert "535.171" in problem.message


def test_table_cut_off_after_its_header_is_reported() -> None:
    head = "\n".join(read("h100-580-table.txt").splitlines()[:8])
    report = parse(head)
    assert report.format == "table"
    assert report.driver_version == "580.159.04"
    assert report.gpus == ()
    assert [problem.kind for problem in report.problems] == ["unparseable"]


@pytest.mark.parametrize(
    "text", ["", "   \n\n", "hello world\n", "Segmentation fault (core dumped)"]
)
def test_text_without_nvidia_smi_output_is_unparseable(text: str) -> None:
    report = parse(text)
    assert report.format == "unknown"
    assert [problem.kind for problem in report.problems] == ["unparseable"]


# --- values that are not values --------------------------------------------------------------


@pytest.mark.parametrize("placeholder", ["N/A", "ERR!", "Not Found", "[Not Supported]", "[N/A]"])
def test_placeholders_become_none(placeholder: str) -> None:
    text = read("h100-580-query-gpu.csv").replace("81559 MiB", placeholder)
    text = text.replace(", 9.0,", f", {placeholder},")
    (gpu,) = parse(text).gpus
    assert gpu.memory_mib is None
    assert gpu.compute_capability is None
    assert gpu.name == "NVIDIA H100 80GB HBM3"


def test_unknown_error_in_query_log_becomes_none() -> None:
    text = read("h100-580-q.txt").replace(
        "Total                                          : 81559 MiB",
        "Total                                          : [Unknown Error]",
        1,
    )
    (gpu,) = parse(text).gpus
    assert gpu.memory_mib is None
    assert gpu.uuid == "GPU-bcfee904-df4b-4b87-881e-903b769eea31"


# --- CSV: any column order, with or without header and units --------------------------------

H100_ROW = {
    "index": "0",
    "name": "NVIDIA H100 80GB HBM3",
    "driver_version": "580.159.04",
    "memory.total [MiB]": "81559 MiB",
    "compute_cap": "9.0",
    "uuid": "GPU-bcfee904-df4b-4b87-881e-903b769eea31",
    "pci.bus_id": "00000000:00:06.0",
}


def csv_text(columns: list[str], *, header: bool = True, units: bool = True) -> str:
    def cell(column: str) -> str:
        value = H100_ROW[column]
        return value if units else value.replace(" MiB", "")

    names = [c if units else c.replace(" [MiB]", "") for c in columns]
    lines = [", ".join(names)] if header else []
    lines.append(", ".join(cell(c) for c in columns))
    return "\n".join(lines) + "\n"


H100 = Gpu(
    index=0,
    name="NVIDIA H100 80GB HBM3",
    memory_mib=81559,
    compute_capability="9.0",
    uuid="GPU-bcfee904-df4b-4b87-881e-903b769eea31",
    bus_id="00000000:00:06.0",
)


@pytest.mark.parametrize(
    ("columns", "header", "units"),
    [
        (
            ["pci.bus_id", "compute_cap", "uuid", "memory.total [MiB]", "name", "driver_version"],
            True,
            True,
        ),
        (
            ["pci.bus_id", "compute_cap", "uuid", "memory.total [MiB]", "name", "driver_version"],
            True,
            False,
        ),
        (
            ["name", "uuid", "compute_cap", "memory.total [MiB]", "pci.bus_id", "driver_version"],
            False,
            True,
        ),
    ],
    ids=["header", "header-nounits", "noheader"],
)
def test_csv_in_any_column_order(columns: list[str], header: bool, units: bool) -> None:
    """With a header the names say what each column is; without one, the value shapes do."""
    report = parse(csv_text(columns, header=header, units=units))
    assert report.format == "query"
    assert report.driver_version == "580.159.04"
    assert report.gpus == (H100,)


def test_csv_without_header_or_units_does_not_guess_memory() -> None:
    """A bare number could be memory used, free or total: it stays unknown."""
    columns = ["uuid", "memory.total [MiB]", "compute_cap"]
    (gpu,) = parse(csv_text(columns, header=False, units=False)).gpus
    assert gpu.memory_mib is None
    assert gpu.compute_capability == "9.0"
    assert gpu.uuid == "GPU-bcfee904-df4b-4b87-881e-903b769eea31"


def test_csv_driver_version_alone() -> None:
    report = parse("driver_version\n580.159.04\n")
    assert report.driver_version == "580.159.04"


def test_csv_noheader_driver_version_alone() -> None:
    report = parse("580.159.04\n")
    assert report.driver_version == "580.159.04"


@pytest.mark.parametrize(
    "version",
    [
        "\u0665\u0665\u0660.\u0665\u0664.\u0661\u0664",  # Arabic-Indic digits
        "550.54.\u0661\u0664",  # ASCII up to a Unicode digit: no prefix is taken
        "550.54.14\x00",
        "550\x00.54.14",
    ],
)
def test_a_driver_version_that_is_not_ascii_digits_is_rejected_in_every_format(
    version: str,
) -> None:
    """One rule with the other sources (machine.driver_version); before, the table took
    the ASCII prefix of "550.54.١٤" and the CSV reader took Arabic-Indic digits."""
    table = read("h100-580-table.txt").replace("580.159.04", version)
    query = read("h100-580-query-gpu.csv").replace("580.159.04", version)
    xml = "<nvidia_smi_log><driver_version>" + version + "</driver_version></nvidia_smi_log>"
    for text in (table, query, "driver_version\n" + version + "\n", xml):
        assert parse(text).driver_version is None, text


# --- pastes ----------------------------------------------------------------------------------


def _h100_table_is_read(report: SmiReport) -> None:
    assert report.format == "table"
    assert report.driver_version == "580.159.04"
    assert report.cuda_version == "13.0"
    (gpu,) = report.gpus
    assert (gpu.name, gpu.memory_mib, gpu.bus_id) == (
        "NVIDIA H100 80GB HBM3",
        81559,
        "00000000:00:06.0",
    )
    assert gpu.mig_enabled is False
    assert report.problems == ()


TABLE_LINES = read("h100-580-table.txt").splitlines()


@pytest.mark.parametrize(
    "paste",
    [
        pytest.param("\n".join("> " + line for line in TABLE_LINES), id="markdown-quote"),
        pytest.param("\n".join(["```text", *TABLE_LINES, "```"]), id="code-fence"),
        pytest.param("\n".join(["$ nvidia-smi", *TABLE_LINES, "$"]), id="shell-prompt"),
        pytest.param(
            "\n".join(["user@gpu-box:~$ sudo nvidia-smi", *TABLE_LINES]), id="user-host-prompt"
        ),
        pytest.param("\n".join(["PS C:\\> nvidia-smi.exe", *TABLE_LINES]), id="powershell"),
        pytest.param("\n".join(["C:\\Users\\me>nvidia-smi", *TABLE_LINES]), id="cmd-prompt"),
        pytest.param(
            "\n".join(
                f"2024-05-01T10:00:{i:02d}.1234567Z {line}" for i, line in enumerate(TABLE_LINES)
            ),
            id="ci-timestamps",
        ),
        pytest.param(
            "\n".join(f"[2024-05-01 10:00:00,123] [stdout] {line}" for line in TABLE_LINES),
            id="log-prefixes",
        ),
        pytest.param("\n".join(f"gpu-check-1  | {line}" for line in TABLE_LINES), id="compose"),
        pytest.param("\r\n".join(TABLE_LINES), id="crlf"),
        pytest.param("\n".join("    " + line for line in TABLE_LINES), id="indented"),
        pytest.param(" ".join(TABLE_LINES), id="all-lines-joined"),
        pytest.param(
            "\n".join(part for line in TABLE_LINES for part in textwrap.wrap(line, 50)),
            id="rewrapped-at-50",
        ),
        pytest.param(
            "\n".join(f"\x1b[32m{line}\x1b[0m" for line in TABLE_LINES), id="ansi-colours"
        ),
        pytest.param("\n".join(line.replace("|", "│") for line in TABLE_LINES), id="box-drawing"),
    ],
)
def test_pasted_table_is_read(paste: str) -> None:
    _h100_table_is_read(parse(paste))


def test_pasted_query_log_in_quotes_and_fences() -> None:
    paste = "\n".join(
        ["> ```", *("> " + line for line in read("h100-580-q.txt").splitlines()), "> ```"]
    )
    report = parse(paste)
    assert report.format == "query"
    (gpu,) = report.gpus
    assert (gpu.memory_mib, gpu.mig_enabled) == (81559, False)


def test_query_log_without_indentation_still_finds_memory_and_mig() -> None:
    flat = "\n".join(line.strip() for line in read("h100-580-q.txt").splitlines())
    (gpu,) = parse(flat).gpus
    assert (gpu.memory_mib, gpu.mig_enabled) == (81559, False)
    assert gpu.bus_id == "00000000:00:06.0"


def test_error_inside_a_shell_session_paste() -> None:
    paste = (
        "```\n"
        "root@7f3c2a:/workspace# nvidia-smi\n"
        "Failed to initialize NVML: Driver/library version mismatch\n"
        "NVML library version: 550.127\n"
        "root@7f3c2a:/workspace#\n"
        "```\n"
    )
    report = parse(paste)
    assert [problem.kind for problem in report.problems] == ["version_mismatch"]
    assert report.nvml_version == "550.127"


# --- XML safety ------------------------------------------------------------------------------


def test_xml_with_entity_declarations_is_refused_not_expanded() -> None:
    bomb = (
        '<?xml version="1.0"?>\n<!DOCTYPE nvidia_smi_log [\n'
        '<!ENTITY a "aaaaaaaaaa">\n<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">\n'
        '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">\n]>\n'
        "<nvidia_smi_log><driver_version>&c;</driver_version></nvidia_smi_log>\n"
    )
    report = parse(bomb)
    assert report.format == "xml"
    assert report.driver_version is None
    assert [problem.kind for problem in report.problems] == ["unparseable"]


def test_xml_external_entity_is_refused() -> None:
    xxe = (
        '<?xml version="1.0"?>\n<!DOCTYPE nvidia_smi_log [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
        "<nvidia_smi_log><driver_version>&x;</driver_version></nvidia_smi_log>\n"
    )
    report = parse(xxe)
    assert report.driver_version is None
    assert [problem.kind for problem in report.problems] == ["unparseable"]


def test_xml_cut_off_keeps_what_came_before_the_cut() -> None:
    text = read("h100-580-q-x.xml")
    report = parse(text[: len(text) // 2])
    assert report.format == "xml"
    assert (report.driver_version, report.cuda_version) == ("580.159.04", "13.0")
    (gpu,) = report.gpus
    assert (gpu.name, gpu.memory_mib) == ("NVIDIA H100 80GB HBM3", 81559)
    assert report.problems == ()


def test_xml_cut_off_before_any_value_is_unparseable() -> None:
    text = read("h100-580-q-x.xml")
    report = parse(text[: text.index("<nvidia_smi_log>") + 20])
    assert report.format == "xml"
    assert report.gpus == ()
    assert [problem.kind for problem in report.problems] == ["unparseable"]


def test_xml_copied_from_html_source_is_unescaped() -> None:
    escaped = read("h100-580-q-x.xml").replace(">", "&gt;").replace("\t", "&nbsp; ")
    report = parse(escaped)
    assert report.format == "xml"
    assert report.driver_version == "580.159.04"
    assert report.gpus[0].uuid == "GPU-bcfee904-df4b-4b87-881e-903b769eea31"


def test_huge_input_is_bounded() -> None:
    report = parse(read("h100-580-table.txt") + "x" * (MAX_CHARS * 2))
    assert report.driver_version == "580.159.04"


# --- several outputs in one paste ------------------------------------------------------------


def test_table_and_list_in_one_paste_are_combined() -> None:
    """The table has memory and bus id, -L the UUID and the name it does not cut."""
    table = read("h100-580-table.txt").replace(
        "NVIDIA H100 80GB HBM3   ", "NVIDIA H100 80G...     "
    )
    report = parse(read("h100-580-L.txt") + "\n" + table)
    assert report.format == "table"
    (gpu,) = report.gpus
    assert gpu.name == "NVIDIA H100 80GB HBM3"
    assert gpu.uuid == "GPU-bcfee904-df4b-4b87-881e-903b769eea31"
    assert (gpu.memory_mib, gpu.bus_id) == (81559, "00000000:00:06.0")
    assert report.driver_version == "580.159.04"


def test_version_output_adds_the_driver_to_a_list() -> None:
    report = parse(read("h100-580-L.txt") + "\n" + read("h100-580-version.txt"))
    assert report.format == "list"
    assert (report.driver_version, report.cuda_version, report.nvml_version) == (
        "580.159.04",
        "13.0",
        "580.159",
    )
    assert len(report.gpus) == 1


def test_compute_apps_rows_name_each_gpu_once() -> None:
    """--query-compute-apps repeats the GPU on every process row (lines from a real capture)."""
    text = (
        "timestamp, gpu_name, gpu_bus_id, gpu_serial, gpu_uuid, pid, process_name, "
        "used_gpu_memory [MiB]\n"
        "2026/06/24 10:17:41.921, NVIDIA GeForce RTX 2080 SUPER, 00000000:0C:00.0, [N/A], "
        "GPU-00000000-0000-0000-0000-000000000000, 2140, C:\\Windows\\System32\\dwm.exe, [N/A]\n"
        "2026/06/24 10:17:41.921, NVIDIA GeForce RTX 2080 SUPER, 00000000:0C:00.0, [N/A], "
        "GPU-00000000-0000-0000-0000-000000000000, 13160, C:\\Windows\\explorer.exe, [N/A]\n"
    )
    (gpu,) = parse(text).gpus
    assert (gpu.name, gpu.bus_id) == ("NVIDIA GeForce RTX 2080 SUPER", "00000000:0C:00.0")
    assert gpu.memory_mib is None  # used_gpu_memory is a process's, not the GPU's


def test_identical_rows_without_ids_stay_separate_gpus() -> None:
    (first, second) = parse(read("quadro-rtx6000-570-noheader.csv")).gpus
    assert (first.index, second.index) == (0, 1)


def test_list_output_commented_out_in_a_script() -> None:
    commented = "\n".join("# " + line for line in read("a100-4gpu-mig-on-gpu0-L.txt").splitlines())
    report = parse(commented)
    assert [gpu.index for gpu in report.gpus] == [0, 1, 2, 3]
    assert len(report.gpus[0].mig_devices) == 4


# --- hostile input ---------------------------------------------------------------------------

HOSTILE = 40_000


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("$" * HOSTILE, id="prompt-characters"),
        pytest.param("GPU 0: x (UUID: " * (HOSTILE // 16), id="unclosed-list-lines"),
        pytest.param("GPU 0: " * (HOSTILE // 7), id="list-entries-without-uuid"),
        pytest.param("\n" * HOSTILE, id="blank-lines"),
        pytest.param("# x\n" * (HOSTILE // 4), id="comment-lines"),
        pytest.param("1" * HOSTILE + " x MiB", id="digit-run"),
        pytest.param("==============NVSMI LOG==============\n" + " " * HOSTILE, id="q-spaces"),
        pytest.param("nvidia-smi" * (HOSTILE // 10), id="command-name-run"),
        pytest.param("|   0  x  On  | 0000:00:00.0 |" * (HOSTILE // 30), id="gpu-row-cells"),
        pytest.param("1.0, " * (HOSTILE // 5), id="capability-columns"),
    ],
)
def test_hostile_text_is_parsed_without_backtracking_blowup(text: str) -> None:
    """Shapes that once made a regular expression or a loop quadratic; each now parses in
    linear time (a regression would make this test take minutes, not fail)."""
    report = parse(text)
    assert report.format in {"table", "query", "list", "unknown"}
    assert all("internal parser error" not in problem.message for problem in report.problems)
