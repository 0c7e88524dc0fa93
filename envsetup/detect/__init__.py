"""Detect the live machine (or read a saved `nvidia-smi` paste) into a `Machine` with evidence.

Probes run cheapest first and stop as soon as the facts are known: the kernel module's version
files (microseconds), then NVML in a child process (every GPU fact at once; a driver library
that crashes or hangs takes down only that child), then libcuda for the CUDA version if NVML
could not say, and `nvidia-smi` (20-100 ms) only for facts still missing or to diagnose a
driver that does not answer. Overrides from the environment win over
every probe, and each decision leaves evidence behind.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from envsetup.detect.findings import Findings, now
from envsetup.detect.host import current_platform
from envsetup.detect.overrides import Override, force_gfx, read_overrides
from envsetup.model.machine import Gpu, Machine, Platform, Problem

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (~3 ms of start-up)
if TYPE_CHECKING:
    from envsetup.detect.smi import SmiReport
    from envsetup.model.machine import ProblemKind

__all__ = [
    "detect",
    "machine_from_nvidia_smi",
    "machine_from_saved_output",
    "read_nvidia_smi_output",
]


def detect(
    *,
    root: Path = Path("/"),
    environ: Mapping[str, str] | None = None,
    timeout: float = 5.0,
    spawn: bool = True,
) -> Machine:
    """Probe this machine. `root` relocates every file probe (tests build a fake tree there);
    NVML and libcuda are then looked for only under `root`, never in the loader's path.
    `timeout` bounds each query that runs in another process (NVML, nvidia-smi, ...).
    `spawn=False` keeps to the cheap probes (files, NVML): no `nvidia-smi` or
    `rocm_agent_enumerator`, whose hang would stall a caller such as pytest's header."""
    env = os.environ if environ is None else environ
    findings = Findings()
    overrides = read_overrides(env, findings)
    platform = current_platform(root, env, findings)
    nvidia = _Nvidia(root, env, platform, timeout, findings, spawn=spawn)
    nvidia.probe()
    gpus = list(fill_capabilities(nvidia.gpus, findings))
    gpus.extend(
        _amd_gpus(
            root=root,
            environ=env,
            platform=platform,
            first_index=len(gpus),
            timeout=timeout if spawn else None,
            findings=findings,
        )
    )
    mps = platform.os == "macos" and platform.arch == "arm64"
    if mps:
        findings.record("mps", True, "platform macos-arm64 (Apple silicon)", now())
    xpu = platform.os == "linux" and _intel_xpu(root, findings)
    from envsetup.detect.nvidia import visible_devices

    visible = visible_devices(env, findings)
    driver, cuda = nvidia.driver, nvidia.cuda
    driver, cuda, gpus = _apply_overrides(
        overrides=overrides,
        driver=driver,
        cuda=cuda,
        gpus=gpus,
        platform=platform,
        findings=findings,
    )
    _check_visible(visible, gpus, findings)
    override = overrides.get("backend_override")
    from envsetup.detect.host import hostname

    node = hostname(env, findings)
    return Machine(
        hostname=node,
        platform=platform,
        driver_version=driver,
        cuda_version=cuda,
        gpus=tuple(gpus),
        visible_gpus=visible,
        device_nodes=nvidia.device_nodes,
        mps=mps,
        xpu=xpu,
        backend_override=None if override is None else str(override.value),
        evidence=tuple(findings.evidence),
        warnings=tuple(findings.warnings),
        errors=tuple(findings.problems),
    )


class _Nvidia:
    """The NVIDIA part of detection: each step runs only while facts are still missing."""

    def __init__(
        self,
        root: Path,
        environ: Mapping[str, str],
        platform: Platform,
        timeout: float,
        findings: Findings,
        *,
        spawn: bool,
    ) -> None:
        self.root, self.environ, self.platform = root, environ, platform
        self.timeout, self.findings = timeout, findings
        self.spawn = spawn
        self.driver_said_why = False  # NVML classified why the driver cannot answer
        self.driver: str | None = None
        self.cuda: str | None = None
        self.gpus: tuple[Gpu, ...] = ()
        self.device_nodes: bool | None = None
        self.smi_failed = False

    def probe(self) -> None:
        if self.platform.os not in ("linux", "windows"):
            return
        module_loaded = self.platform.os == "linux" and self._kernel_module()
        if module_loaded or self.platform.wsl or self.platform.os == "windows":
            self._nvml()
            if self.cuda is None and self.driver is not None:
                self._libcuda()
        # nvidia-smi sits on NVML: once NVML has said why the driver cannot answer, it would
        # only say it again, slower. An NVML that crashed or hung has said nothing: go on.
        missing = not self.gpus or self.driver is None or self._missing_capability()
        if missing and self.spawn and not self.driver_said_why:
            self._nvidia_smi(module_loaded)
        if self.cuda is None and self.driver is not None:
            self.cuda = derive_cuda(self.driver, self.platform.os, self.findings)
        if module_loaded and not self.gpus and not self.findings.problems:
            self.gpus = _pci_gpus(self.root, self.findings)
        if self.driver is not None and not self.gpus and not self.findings.problems:
            self.findings.warn(
                f"NVIDIA driver {self.driver} is installed but no GPU could be listed "
                "(NVML and nvidia-smi gave nothing)"
            )

    def _kernel_module(self) -> bool:
        from envsetup.detect import nvidia

        found = nvidia.sys_module_driver(self.root, self.findings) or nvidia.proc_driver(
            self.root, self.findings
        )
        self.driver = found
        self.device_nodes = nvidia.device_nodes(self.root, self.platform.wsl, self.findings)
        if found and not self.device_nodes and not self.platform.wsl:
            self.findings.warn(
                f"the NVIDIA driver {found} is loaded on the host but this process sees no "
                "/dev/nvidiactl or /dev/nvidia0: in a container, start it with the NVIDIA runtime "
                "(`docker run --gpus all`) to reach the GPU"
            )
        return found is not None

    def _missing_capability(self) -> bool:
        return any(gpu.compute_capability is None for gpu in self.gpus)

    def _libraries(self, stem: str) -> tuple[str, ...]:
        from envsetup.detect.nvml import library_candidates

        return library_candidates(stem, self.root, self.platform.os, self.platform.wsl)

    def _nvml(self) -> None:
        from envsetup.detect import nvml

        started = now()
        candidates = self._libraries("nvidia-ml")
        report = None
        if nvml.could_load(candidates):
            report = nvml.query_nvml(candidates, timeout=self.timeout)
        if report is None:
            self.findings.record("gpus", None, "NVML (no libnvidia-ml / nvml.dll found)", started)
            return
        if isinstance(report, Problem):
            self.findings.record("gpus", None, "NVML (no answer)", started)
            self.findings.problem(report.kind, report.message, report.hint)
            return
        if report.count > nvml.MAX_DEVICES:
            self.findings.warn(
                f"NVML reported {report.count} GPUs, a driver fault: envsetup read the first "
                f"{nvml.MAX_DEVICES} and kept the {len(report.devices)} that answered"
            )
        driver, cuda, gpus, problem = nvml.interpret(report)
        source = f"NVML {report.library}"
        if report.init_error is not None:
            self.findings.record("gpus", None, f"{source}: {report.init_error[1]}", started)
            if problem is None:
                code, message = report.init_error
                self.findings.warn(f"NVML could not start: {message} (error {code})")
        else:
            self.findings.record("gpus", len(gpus), source, started)
            self.findings.record("driver_version", driver, source, started)
            self.findings.record("cuda_version", cuda, source, started)
            _record_capabilities(gpus, source, started, self.findings)
        if problem is not None:
            self.findings.problem(problem.kind, problem.message, problem.hint)
            self.driver_said_why = True
        self.driver = self.driver or driver
        self.cuda, self.gpus = cuda, gpus

    def _libcuda(self) -> None:
        from envsetup.detect import nvml

        started = now()
        candidates = self._libraries("cuda")
        answer = None
        if nvml.could_load(candidates):
            answer = nvml.query_libcuda(candidates, timeout=self.timeout)
        if answer is None:
            self.findings.record("cuda_version", None, "libcuda (not found)", started)
            return
        if isinstance(answer, Problem):
            self.findings.record("cuda_version", None, "libcuda (no answer)", started)
            self.findings.problem(answer.kind, answer.message, answer.hint)
            return
        value, library = answer
        self.cuda = nvml.cuda_from_int(value)
        self.findings.record("cuda_version", self.cuda, f"cuDriverGetVersion {library}", started)

    def _nvidia_smi(self, module_loaded: bool) -> None:
        from envsetup.detect import nvidia

        executable = nvidia.locate_nvidia_smi(
            self.root, self.environ, self.platform.os, self.platform.wsl, self.findings
        )
        if executable is None:
            if module_loaded and not self.gpus:
                self.findings.warn(
                    "the NVIDIA kernel module is loaded but neither NVML nor nvidia-smi is "
                    "available to list the GPUs; install the driver's user-space utilities"
                )
            return
        report = self._run_smi(executable, nvidia.QUERY_ARGS)
        if report is None:
            return
        self.driver = self.driver or report.driver_version
        from envsetup.detect.smi import fill_gaps

        self.gpus = fill_gaps(self.gpus, report.gpus) if self.gpus else report.gpus
        if self.cuda is None and self.driver is not None and not report.problems:
            plain = self._run_smi(executable, ())
            if plain is not None:
                self.cuda = plain.cuda_version

    def _run_smi(self, executable: Path, args: tuple[str, ...]) -> SmiReport | None:
        from envsetup.detect.smi import parse
        from envsetup.detect.tool import run_tool

        if self.smi_failed:
            return None
        started = now()
        command = " ".join(["nvidia-smi", *args])
        result = run_tool([str(executable), *args], timeout=self.timeout, environ=self.environ)
        if result.problem is not None:
            self.smi_failed = True
            self.findings.record("nvidia_smi", None, command, started)
            self.findings.problem(result.problem.kind, result.problem.message, result.problem.hint)
            return None
        text = result.stdout if result.stdout.strip() else result.stderr
        report = parse(text)
        classified = [problem for problem in report.problems if problem.kind != "unparseable"]
        for problem in classified:
            self.findings.problem(problem.kind, problem.message, problem.hint)
        if report.problems or not (report.gpus or report.driver_version):
            self.smi_failed = True
            if not classified:  # our words: they name the command, its exit code or signal
                self.findings.problem(*_silent_failure(command, result.returncode, text))
            self.findings.record("nvidia_smi", None, command, started)
            return None
        if args:
            self.findings.record("gpus", len(report.gpus), command, started)
            self.findings.record("driver_version", report.driver_version, command, started)
            _record_capabilities(report.gpus, command, started, self.findings)
        else:
            self.findings.record("cuda_version", report.cuda_version, command, started)
        return report


def _silent_failure(command: str, code: int | None, text: str) -> tuple[ProblemKind, str, str]:
    """A run that printed nothing we understand: a crash, or output from an unknown version."""
    if code is not None and code < 0:
        what = f"{command} crashed (signal {-code})"
    elif code:
        what = f"{command} failed with exit code {code}"
    else:
        what = f"{command} printed nothing envsetup understands"
    shown = (text.strip().splitlines() or [""])[0][:120]
    if shown and shown.isprintable() and "\ufffd" not in shown:  # no binary/escapes to a tty
        what += f": {shown}"
    return (
        "unparseable",
        what,
        "run nvidia-smi yourself; if it works, save its output and report it with "
        "`envsetup detect --nvidia-smi-output FILE`",
    )


def _record_capabilities(
    gpus: Sequence[Gpu], source: str, started: float, findings: Findings
) -> None:
    capabilities = [gpu.compute_capability for gpu in gpus if gpu.compute_capability]
    if capabilities:
        findings.record("compute_capability", ",".join(capabilities), source, started)


def fill_capabilities(gpus: Sequence[Gpu], findings: Findings) -> tuple[Gpu, ...]:
    """Fill each NVIDIA GPU's missing compute capability from its name (matrices/gpus.toml):
    the one place pastes and every fallback path without NVML learn the arch from."""
    if all(gpu.compute_capability or gpu.vendor != "nvidia" for gpu in gpus):
        return tuple(gpus)  # nothing to fill: the table and the matrices stay unloaded (~7 ms)
    from envsetup.matrices.gpu_table import fill_capabilities as from_table

    started = now()
    filled, found, unknown = from_table(gpus)
    for line in found:
        findings.record("compute_capability", line, "matrices/gpus.toml (GPU name)", started)
    for message in unknown:
        findings.warn(message)
    return filled


def _pci_gpus(root: Path, findings: Findings) -> tuple[Gpu, ...]:
    """The driver is loaded but nothing lists the GPUs: their PCI ids still name the model."""
    from envsetup.detect.nvidia import pci_devices
    from envsetup.matrices.gpu_table import load_table

    devices = pci_devices(root, findings)
    if not devices:
        return ()
    table = load_table()
    gpus = []
    for index, (bus, device) in enumerate(devices):
        model = table.by_pci(device)
        if model is None:
            findings.warn(
                f"compute capability unknown for GPU [10de:{device:04x}] at {bus}; "
                "pass --compute-cap"
            )
        gpus.append(
            Gpu(
                index=index,
                name=None if model is None else model.names[0],
                bus_id=bus,
                compute_capability=None if model is None else model.cc,
            )
        )
    started = now()
    caps = ",".join(gpu.compute_capability or "?" for gpu in gpus)
    findings.record("compute_capability", caps, "matrices/gpus.toml (PCI device id)", started)
    return tuple(gpus)


def derive_cuda(driver: str, os_name: str, findings: Findings) -> str | None:
    """The newest CUDA a driver supports, from NVIDIA's table in `matrices/` (when no source
    printed one: very old drivers, or only the kernel module's version is known)."""
    from envsetup.matrices import load

    started = now()
    cuda = load().max_cuda_for_driver(driver, os_name)
    findings.record("cuda_version", cuda, f"matrices: newest CUDA for driver {driver}", started)
    return cuda


def _amd_gpus(
    *,
    root: Path,
    environ: Mapping[str, str],
    platform: Platform,
    first_index: int,
    timeout: float | None,
    findings: Findings,
) -> tuple[Gpu, ...]:
    """AMD GPUs from KFD topology, else `rocm_agent_enumerator` (timeout None: never spawned)."""
    if platform.os != "linux" or platform.wsl:
        return ()
    from envsetup.detect import amd

    found = amd.kfd_gpus(root, first_index, findings)
    if found is None and timeout is not None:
        found = amd.enumerator_gpus(root, environ, first_index, timeout, findings)
    return found or ()


def _intel_xpu(root: Path, findings: Findings) -> bool:
    from envsetup.detect.intel import intel_xpu

    return intel_xpu(root, findings)


def _apply_overrides(
    *,
    overrides: Mapping[str, Override],
    driver: str | None,
    cuda: str | None,
    gpus: list[Gpu],
    platform: Platform,
    findings: Findings,
) -> tuple[str | None, str | None, list[Gpu]]:
    """Overrides win; a forced driver also re-derives the CUDA version unless that is forced."""
    forced_driver = overrides.get("driver_version")
    if forced_driver is not None:
        _note_shadowed(forced_driver, driver, findings)
        driver = str(forced_driver.value)
        if "cuda_version" not in overrides:
            cuda = derive_cuda(driver, platform.os, findings)
    forced_cuda = overrides.get("cuda_version")
    if forced_cuda is not None:
        _note_shadowed(forced_cuda, cuda, findings)
        cuda = str(forced_cuda.value)
    forced_caps = overrides.get("compute_capability")
    if forced_caps is not None:
        gpus = _force_capabilities(gpus, tuple(forced_caps.value), findings)
    forced_gfx = overrides.get("amd_arch")
    if forced_gfx is not None:
        gpus = force_gfx(gpus, tuple(forced_gfx.value), forced_gfx.variable, findings.warn)
    return driver, cuda, gpus


def _note_shadowed(override: Override, detected: str | None, findings: Findings) -> None:
    if detected is not None and detected != override.value:
        findings.warn(
            f"{override.variable}={override.value} overrides the detected "
            f"{override.fact.replace('_', ' ')} {detected}"
        )


def _force_capabilities(
    gpus: list[Gpu], capabilities: tuple[str, ...], findings: Findings
) -> list[Gpu]:
    """One value applies to every NVIDIA GPU, a list to GPUs by position; with no GPU detected
    the list describes the target machine's GPUs (planning for another box)."""
    nvidia = [gpu for gpu in gpus if gpu.vendor == "nvidia"]
    others = [gpu for gpu in gpus if gpu.vendor != "nvidia"]
    if not nvidia:
        return [
            Gpu(index=index, compute_capability=capability)
            for index, capability in enumerate(capabilities)
        ] + others
    if len(capabilities) not in (1, len(nvidia)):
        findings.warn(
            f"ENVSETUP_COMPUTE_CAP lists {len(capabilities)} values for {len(nvidia)} GPUs; "
            "they are applied by position and the rest keep what was detected"
        )
    if len(capabilities) == 1:
        capabilities = capabilities * len(nvidia)
    forced = [
        dataclasses.replace(gpu, compute_capability=capability)
        for gpu, capability in zip(nvidia, capabilities)
    ]
    return forced + nvidia[len(forced) :] + others


def _check_visible(
    visible: tuple[str, ...] | None, gpus: Sequence[Gpu], findings: Findings
) -> None:
    """CUDA stops at the first entry it cannot match; say so before torch silently sees none."""
    from envsetup.model.visibility import cuda_visible, describe_ignored

    seen = cuda_visible(visible, [gpu for gpu in gpus if gpu.vendor == "nvidia"])
    if seen.ignored:
        findings.warn(describe_ignored(seen))
    if seen.hides_all:
        shown = ",".join(visible or ())
        findings.warn(
            f"CUDA_VISIBLE_DEVICES={shown!r} hides every GPU: CUDA programs (torch) will see none"
        )


def machine_from_nvidia_smi(text: str, *, platform: Platform | None = None) -> Machine:
    """A `Machine` described by saved `nvidia-smi` output (any format), e.g. from a bug report.
    Failures in the text (no driver, mismatch...) become `errors`; the parser never raises."""
    from envsetup.detect.smi import parse

    return _machine_from_report(parse(text), platform, text)


def _pasted_platform(text: str, findings: Findings) -> Platform:
    """The platform the pasted output shows (Windows, WSL, FreeBSD), else this machine's;
    either way the evidence says which, so nobody plans a Windows box as Linux unawares."""
    from envsetup.detect.host import python_tag
    from envsetup.detect.smi.paste_platform import pasted_os

    started = now()
    here = current_platform()
    found = pasted_os(text)
    if found is None:
        source = "this machine, as the paste does not show its OS (--platform sets it)"
        findings.record("platform", here.key, source, started)
        return here
    os_name, wsl, why = found
    arch = {"windows": "amd64", "freebsd": "amd64"}.get(os_name, "x86_64")
    platform = Platform(os=os_name, arch=arch, python=python_tag(), wsl=wsl)
    shown = f"{platform.key}{', WSL' if wsl else ''}"
    findings.record("platform", platform.key, f"the paste ({why})", started)
    findings.warn(
        f"planned for {shown}, the OS the paste shows ({why}), and this Python "
        f"({platform.python}); --platform and --python set them"
    )
    return platform


def _machine_from_report(report: SmiReport, platform: Platform | None, text: str) -> Machine:
    findings = Findings()
    started = now()
    source = f"nvidia-smi output ({report.format})"
    findings.record("driver_version", report.driver_version, source, started)
    findings.record("cuda_version", report.cuda_version, source, started)
    findings.record("gpus", len(report.gpus), source, started)
    _record_capabilities(report.gpus, source, started, findings)
    gpus = fill_capabilities(report.gpus, findings)
    target = platform or _pasted_platform(text, findings)
    driver, cuda = report.driver_version, report.cuda_version
    mismatch = any(problem.kind == "version_mismatch" for problem in report.problems)
    if driver is None and mismatch and report.nvml_version is not None:
        # The library is the driver installed last: the one the machine runs after a reboot.
        driver = report.nvml_version
        findings.record("driver_version", driver, "NVML library version (after a reboot)", now())
        findings.warn(
            f"reboot first: the driver was updated to {driver} without a reboot; the plan is "
            f"for driver {driver}, which runs once the machine restarts"
        )
    if cuda is None and driver is not None:
        cuda = derive_cuda(driver, target.os, findings)
    return Machine(
        platform=target,
        driver_version=driver,
        cuda_version=cuda,
        gpus=gpus,
        evidence=tuple(findings.evidence),
        warnings=tuple(findings.warnings),
        errors=report.problems,
    )


def read_nvidia_smi_output(path: str) -> str:
    """The text of a saved `nvidia-smi` output ("-" = stdin); unreadable is a usage error."""
    import sys

    from envsetup.errors import UsageError

    try:
        if path == "-":
            return sys.stdin.buffer.read().decode("utf-8", "replace")
        return Path(path).read_bytes().decode("utf-8", "replace")
    except OSError as error:
        raise UsageError(
            f"cannot read the nvidia-smi output {path!r}: {error.strerror or error}",
            hint="pass a file saved from `nvidia-smi > smi.txt`, or `-` to read standard input",
        ) from None


def machine_from_saved_output(path: str, *, platform: Platform | None = None) -> Machine:
    """The machine a saved `nvidia-smi` output file describes ("-" = stdin).

    A text in which nothing is recognised (no driver, no GPU, not one of nvidia-smi's own
    failure messages) is not an output at all: a usage error in one line, not an empty machine.
    """
    from envsetup.detect.smi import parse
    from envsetup.errors import UsageError

    text = read_nvidia_smi_output(path)
    report = parse(text)
    if report.format != "error" and report.driver_version is None and not report.gpus:
        what = report.problems[0].message if report.problems else "nothing recognised"
        raise UsageError(
            f"--nvidia-smi-output {path!r}: {what}; expected the complete output of "
            "`nvidia-smi`, `nvidia-smi -q` or `nvidia-smi --query-gpu=... --format=csv`"
        )
    return _machine_from_report(report, platform, text)
