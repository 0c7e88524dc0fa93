"""pytest plugin (entry point `envsetup`): the `gpu` marker, the `device` fixture, a header line
and, when asked, one GPU per xdist worker.

It loads in every project of an environment where envsetup is installed, so it is a guest: a
suite that uses neither envsetup's `device` fixture, nor its `gpu` marker, nor its options runs
exactly as with `-p no:envsetup` — same outcomes, environment and warnings. Hence namespaced
options, a `gpu` marker that steps back where the project has its own, environment settings that
act only on envsetup's own fixture and marker, pinning that is opt-in, and a header from cheap
probes only. Hooks only; the decisions live in `envsetup.integrations.pytest_devices` and
`envsetup.integrations.pytest_options`. Neither torch nor the probes are imported at module level.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from envsetup.integrations import pytest_options as opts

if TYPE_CHECKING:
    from collections.abc import Generator, Mapping

    from envsetup.integrations.pytest_devices import GpuRequirement, TorchView
    from envsetup.model.machine import Machine

MARKER = (
    "gpu(count=1, min_memory=None, min_capability=None, min_cuda=None, backend=None): the test "
    "needs an accelerator (backend 'cuda', 'rocm' or 'mps'); unmet conditions skip it, "
    "--envsetup-gpu require makes an unusable GPU fail it (envsetup)"
)
_OPTIONS = (opts.DEVICE_OPTION, opts.GPU_OPTION, opts.PIN_OPTION)


class _Run:
    """Per-process state of one test run: settings plus lazily detected facts, each found once."""

    def __init__(self, config: pytest.Config, settings: opts.Settings) -> None:
        self.config = config
        self.settings = settings
        self._machine: Machine | None = None
        self._cheap: Machine | None = None
        self._view: TorchView | None = None
        self._unusable: str | None = None
        self.notes: list[str] = []  # said in the terminal summary, never as warnings

    def machine(self, *, cheap: bool = False) -> Machine:
        """The machine, detected once. `cheap` (the header, paid by every run of every project)
        keeps to files and NVML, so a hung `nvidia-smi` cannot stall pytest's start; decisions
        for envsetup's own tests may also ask `nvidia-smi`. A bad ENVSETUP_* override fails the
        caller with its message."""
        if self._machine is not None:
            return self._machine
        if cheap and self._cheap is not None:
            return self._cheap
        from envsetup.detect import detect
        from envsetup.errors import EnvsetupError

        try:
            machine = detect(environ=os.environ, spawn=not cheap)
        except EnvsetupError as exc:
            pytest.fail(f"envsetup: {exc}", pytrace=False)
        if cheap:
            self._cheap = machine
        else:
            self._machine = machine
        return machine

    def view(self) -> TorchView:
        if self._view is None:
            from envsetup.integrations.pytest_devices import probe_torch

            self._view = probe_torch()
        return self._view

    def unusable_reason(self) -> str:
        """Why torch uses no accelerator, with the planner's fix when a GPU is present."""
        if self._unusable is None:
            from envsetup.integrations import pytest_devices as accelerator

            view, machine = self.view(), self.machine()
            self._unusable = accelerator.why_unusable(view, machine, lambda: self.fix(view))
        return self._unusable

    def fix(self, view: TorchView | None = None) -> str | None:
        from envsetup.integrations.pytest_devices import fix_command

        return fix_command(self.machine(), view.version if view else None)

    def workerinput(self) -> dict[str, Any] | None:
        return getattr(self.config, "workerinput", None)

    def worker_gpus(self) -> tuple[str, tuple[str, ...]]:
        """The variable and entries xdist workers are pinned to; no entries: no pinning (not
        asked for, devices chosen by index or all, or no GPU on this machine)."""
        if not self.settings.pin_gpus or self.settings.device not in (("auto",), ("cuda",)):
            return "CUDA_VISIBLE_DEVICES", ()
        machine = self.machine()
        if not machine.gpus:
            return "CUDA_VISIBLE_DEVICES", ()
        from envsetup.integrations.pytest_devices import worker_gpus

        return worker_gpus(machine, os.environ)

    def param_devices(self) -> tuple[str, ...] | None:
        """Devices `device` is parametrized over (`all` or a list), identical on every worker."""
        if self.settings.device == ("all",):
            given = (self.workerinput() or {}).get("envsetup_devices")
            if given is not None:
                return tuple(given)
            from envsetup.integrations.pytest_devices import devices_from_machine

            return devices_from_machine(self.machine())
        return self.settings.device if len(self.settings.device) > 1 else None


_RUN = pytest.StashKey[_Run]()
_REQUIREMENT = pytest.StashKey["GpuRequirement"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("envsetup", "envsetup: gpu marker and device fixture")
    for name, dest, extra in (
        (opts.DEVICE_OPTION, "envsetup_device", {"metavar": "DEVICE", "help": opts.DEVICE_HELP}),
        (opts.GPU_OPTION, "envsetup_gpu", {"metavar": "MODE", "help": opts.GPU_HELP}),
        (opts.PIN_OPTION, "envsetup_pin_gpus", {"action": "store_true", "help": opts.PIN_HELP}),
    ):
        # A plugin loaded earlier that owns the name keeps it; the ini and env names remain.
        with contextlib.suppress(ValueError, argparse.ArgumentError):
            group.addoption(name, dest=dest, **extra)
    parser.addini(opts.DEVICE_INI, opts.DEVICE_HELP)
    parser.addini(opts.GPU_INI, opts.GPU_HELP)
    parser.addini(opts.PIN_INI, opts.PIN_HELP, type="bool", default=False)


def _clash_message(text: str) -> str | None:
    """Our words for argparse's "conflicting option string" (or pytest's "dest already used")
    on one of envsetup's options."""
    taken = [name for name in _OPTIONS if f"string: {name}" in text or f"by ['{name}']" in text]
    return _defined_twice(taken[0]) if taken else None


def _defined_twice(name: str) -> str:
    return (
        f"envsetup: the option {name} is defined twice: by this project (a conftest or "
        "plugin) and by envsetup's pytest plugin. Rename the project's option, or run pytest "
        "with -p no:envsetup to leave envsetup's plugin out."
    )


def _registered_twice(parser: pytest.Parser) -> str | None:
    """An envsetup option name added twice. pytest 8 builds its argparse parser only after the
    initial conftests, so the clash would surface later as argparse's traceback."""
    groups = [getattr(parser, "_anonymous", None), *getattr(parser, "_groups", ())]
    names = [
        name
        for group in groups
        for option in getattr(group, "options", ())
        for name in option.names()
    ]
    return next((name for name in _OPTIONS if names.count(name) > 1), None)


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(parser: pytest.Parser) -> Generator[None, None, None]:
    """A root conftest that takes an envsetup option name: a message, not argparse's traceback."""
    try:
        result = yield
    except (argparse.ArgumentError, ValueError) as exc:
        message = _clash_message(str(exc))
        if message is None:
            raise
        raise pytest.UsageError(message) from None
    taken = _registered_twice(parser)
    if taken is not None:
        raise pytest.UsageError(_defined_twice(taken))
    return result


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report() -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    """The same for a conftest in a subfolder, loaded during collection."""
    report = yield
    if report.failed:
        message = _clash_message(str(report.longrepr))
        if message is not None:
            report.longrepr = message
    return report


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER)
    try:
        settings = opts.load_settings(
            cli_device=config.getoption("envsetup_device", None),
            cli_gpu=config.getoption("envsetup_gpu", None),
            environ=os.environ,
            ini_device=config.getini(opts.DEVICE_INI) or None,
            ini_gpu=config.getini(opts.GPU_INI) or None,
            pin_gpus=bool(
                config.getoption("envsetup_pin_gpus", False) or config.getini(opts.PIN_INI)
            ),
        )
    except ValueError as exc:
        raise pytest.UsageError(f"envsetup: {exc}") from None
    run = _Run(config, settings)
    config.stash[_RUN] = run
    workerinput = run.workerinput()
    if workerinput is not None and workerinput.get("envsetup_gpus"):
        _pin_worker(config, workerinput)
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistHooks(run), "envsetup-xdist")


def _pin_worker(config: pytest.Config, workerinput: dict[str, Any]) -> None:
    """Give this worker one GPU before anything touches CUDA (the runtime reads the variable
    once, at its first call). Asked for with --envsetup-pin-gpus / ini envsetup_pin_gpus."""
    entries: list[str] = workerinput["envsetup_gpus"]
    index = int(str(workerinput["workerid"]).removeprefix("gw"))
    os.environ[workerinput["envsetup_gpu_variable"]] = entries[index % len(entries)]
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        note = "CUDA was initialised before pytest_configure (at conftest import?), so xdist "
        note += f"worker {workerinput['workerid']} sees every GPU instead of its own"
        config.workeroutput["envsetup_note"] = note  # type: ignore[attr-defined]


class _XdistHooks:
    """xdist hooks, registered only when xdist is installed."""

    def __init__(self, run: _Run) -> None:
        self.run = run

    def pytest_configure_node(self, node: Any) -> None:
        """Hand each worker the facts the controller detected, so workers neither probe again
        nor disagree on collection."""
        run = self.run
        if run.settings.device == ("all",) and run.settings.device_source != opts.DEVICE_ENV:
            node.workerinput["envsetup_devices"] = list(run.param_devices() or ())
        variable, entries = run.worker_gpus()
        if entries:
            node.workerinput["envsetup_gpus"] = list(entries)
            node.workerinput["envsetup_gpu_variable"] = variable

    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        note = getattr(node, "workeroutput", {}).get("envsetup_note")
        if note:
            self.run.notes.append(note)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    run = terminalreporter.config.stash.get(_RUN, None)
    if run is not None and run.notes:
        terminalreporter.section("envsetup")
        for note in run.notes:
            terminalreporter.line(note)


def pytest_report_header(config: pytest.Config) -> str:
    """One line (pytest shows headers at normal verbosity only), from metadata and cheap probes;
    never an error, whatever the environment holds."""
    run = config.stash[_RUN]
    machine: Machine | str
    try:
        machine = run.machine(cheap=True)
    except pytest.fail.Exception as exc:
        machine = str(exc.msg).removeprefix("envsetup: ")
    pinned = ""
    workers = config.getoption("numprocesses", None)  # an int once xdist has read "-n auto"
    if isinstance(workers, int) and workers > 0 and run.settings.pin_gpus:
        variable, entries = run.worker_gpus()
        if entries:
            shared = " (shared round-robin)" if workers > len(entries) else ""
            pinned = f"xdist workers pinned to {variable}={','.join(entries)}{shared}"
    return header_line(machine, *_torch_metadata(), run.settings, pinned)


def header_line(
    machine: Machine | str,
    torch_version: str | None,
    build: str,
    settings: opts.Settings,
    pinned: str = "",
) -> str:
    """`envsetup: <hardware>; <torch>; device …; gpu tests …` — `machine` is the detected
    machine, or why detection failed (a bad ENVSETUP_* override)."""
    from envsetup.integrations import pytest_devices as accelerator

    if isinstance(machine, str):
        hardware, gpus_present = f"detection failed: {machine}", False
    else:
        gpus = accelerator.describe_gpus(machine) or "no GPU detected"
        driver = accelerator.driver_summary(machine)
        hardware, gpus_present = (f"{gpus} ({driver})" if driver else gpus), bool(machine.gpus)
    chosen = settings.device_label
    if settings.device == ("auto",) and not isinstance(machine, str):
        chosen = f"auto → {accelerator.expected_device(machine, build)}"
    torch_label = f"torch {torch_version} ({build})" if torch_version else "torch not installed"
    parts = [hardware, torch_label, f"device {chosen}", f"gpu tests {settings.gpu}"]
    if pinned:
        parts.append(pinned)
    if gpus_present and accelerator.cpu_only(build):
        parts.append(f"warning: {torch_label} cannot use the GPU")
    return "envsetup: " + "; ".join(parts)


def _torch_metadata() -> tuple[str | None, str]:
    """torch's version and build from its installed metadata, without importing it."""
    from importlib.metadata import PackageNotFoundError, distribution

    from envsetup.integrations.pytest_devices import torch_dist_build

    try:
        torch = distribution("torch")
    except PackageNotFoundError:
        return None, torch_dist_build(None)
    return torch.version, torch_dist_build(torch.version, torch.requires or ())


def _project_gpu_marker(config: pytest.Config) -> bool:
    """Whether the project registered a `gpu` marker of its own (ini `markers` or
    `config.addinivalue_line`)."""
    for line in config.getini("markers"):
        name = str(line).split(":", 1)[0].split("(", 1)[0].strip()
        if name == "gpu" and line != MARKER:
            return True
    return False


def _gpu_requirements(
    config: pytest.Config, items: list[pytest.Item]
) -> tuple[dict[pytest.Item, GpuRequirement], str | None]:
    """envsetup's reading of every `gpu` marker, or (nothing, why the marker is the project's)."""
    from envsetup.integrations.pytest_devices import requirement_from_marker

    settings = config.stash[_RUN].settings
    if not settings.owns_gpu_marker and _project_gpu_marker(config):
        return {}, "the project registers its own `gpu` marker"
    found: dict[pytest.Item, GpuRequirement] = {}
    errors: dict[str, str] = {}
    for item in items:
        marker = item.get_closest_marker("gpu")
        if marker is None:
            continue
        try:
            found[item] = requirement_from_marker(marker.args, marker.kwargs)
        except ValueError as exc:
            test = item.nodeid.partition("[")[0]
            if not settings.owns_gpu_marker:
                return {}, f"{test} uses `gpu` with arguments envsetup does not define ({exc})"
            errors.setdefault(test, f"{test}: invalid @pytest.mark.gpu: {exc}")
    if errors:
        raise pytest.UsageError("\n".join(errors.values()))
    return found, None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    run = config.stash[_RUN]
    device_users = any(map(_uses_our_device, items))
    if not device_users and not any(item.get_closest_marker("gpu") for item in items):
        return  # a suite that does not use envsetup: nothing to judge, nothing to report
    requirements, stepped_back = _gpu_requirements(config, items)
    if stepped_back and config.get_verbosity() > 0:
        run.notes.append(f"`gpu` marker left to the project: {stepped_back}")
    uses = requirements or device_users
    if uses and run.settings.env_problem:
        raise pytest.UsageError(f"envsetup: {run.settings.env_problem}")
    for item, requirement in requirements.items():
        item.stash[_REQUIREMENT] = requirement
    mode, source = run.settings.gpu, run.settings.gpu_source
    if mode == "skip":
        for item in requirements:
            item.add_marker(
                pytest.mark.skip(reason=f"gpu tests skipped by gpu mode skip ({source})")
            )
    elif mode == "only" and requirements:
        dropped = [item for item in items if item not in requirements]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = [item for item in items if item in requirements]


def _uses_our_device(item: pytest.Item) -> bool:
    info = getattr(item, "_fixtureinfo", None)  # doctests and custom items have none
    return info is not None and _our_device(info.name2fixturedefs)


def _our_device(fixturedefs: Mapping[str, Any]) -> bool:
    """Whether the `device` a test gets is envsetup's (a conftest's own `device` wins)."""
    defs: Any = fixturedefs.get("device") or ()
    return bool(defs) and getattr(defs[-1].func, "__module__", None) == __name__


@pytest.hookimpl(trylast=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "device" not in metafunc.fixturenames or not _our_device(metafunc._arg2fixturedefs):
        return
    run = metafunc.config.stash[_RUN]
    if run.settings.env_problem:
        return  # reported after collection, for suites that use envsetup
    devices = run.param_devices()
    if devices is None or _parametrizes_device(metafunc):
        return
    if metafunc.definition.get_closest_marker("gpu") is not None:
        devices = tuple(name for name in devices if name != "cpu")
    if devices:
        metafunc.parametrize("device", devices, indirect=True, ids=devices)


def _parametrizes_device(metafunc: pytest.Metafunc) -> bool:
    """The test (a marker) or a conftest's `pytest_generate_tests` already parametrized it."""
    if any("device" in call.params for call in metafunc._calls):
        return True
    for marker in metafunc.definition.iter_markers("parametrize"):
        names = marker.args[0] if marker.args else marker.kwargs.get("argnames", ())
        if isinstance(names, str):
            names = [name.strip() for name in names.split(",")]
        if "device" in names:
            return True
    return False


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    requirement = item.stash.get(_REQUIREMENT, None)
    if requirement is None or item.get_closest_marker("skip") is not None:
        return
    from envsetup.integrations import pytest_devices as accelerator

    run = item.config.stash[_RUN]
    settings = run.settings
    if settings.device == ("cpu",):
        _skip(f"gpu test, but device cpu (from {settings.device_source}) forces the CPU")
    if not accelerator.torch_installed():
        _judge_hardware(run, requirement)
        return
    view = run.view()
    if view.backend is None:
        reason = run.unusable_reason()
        if settings.gpu == "require":
            pytest.fail(f"gpu mode require (from {settings.gpu_source}): {reason}", pytrace=False)
        _skip(reason)
    missing = accelerator.unmet(requirement, view)
    if missing:
        _skip("gpu: " + "; ".join(missing))


def _judge_hardware(run: _Run, requirement: GpuRequirement) -> None:
    """No torch here: the test may need a GPU but not torch (cuDF, CuPy), so detection judges."""
    from envsetup.integrations.pytest_devices import unmet_on_machine

    machine = run.machine()
    if not machine.gpus and not machine.mps:
        reason = "no GPU detected (torch is not installed; judged from detection)"
        if run.settings.gpu == "require":
            pytest.fail(
                f"gpu mode require (from {run.settings.gpu_source}): {reason}", pytrace=False
            )
        _skip(reason)
    missing = unmet_on_machine(requirement, machine)
    if missing:
        _skip("gpu: " + "; ".join(missing) + " (torch is not installed; judged from detection)")


def _skip(reason: str) -> NoReturn:
    """Skip, reported at the test's location rather than at this plugin's line."""
    raise pytest.skip.Exception(reason, _use_item_location=True)


@pytest.fixture
def device(request: pytest.FixtureRequest) -> Any:
    """A `torch.device`: the accelerator torch can use (the worker's GPU under xdist), else
    cpu; in a `gpu` test, the accelerator; forced by --envsetup-device / ENVSETUP_DEVICE."""
    from envsetup.integrations.pytest_devices import nvml_cuda_check, torch_installed

    run = request.config.stash[_RUN]
    if not torch_installed():
        fix = run.fix()
        pytest.fail(
            "envsetup's `device` fixture gives a torch.device, but torch is not installed in "
            f"{sys.executable} — fix: {fix or 'install torch (see `envsetup plan`)'}",
            pytrace=False,
        )
    name = _device_name(run, request)
    with nvml_cuda_check():
        import torch

        return torch.device(name)


def _device_name(run: _Run, request: pytest.FixtureRequest) -> str:
    from envsetup.integrations import pytest_devices as accelerator

    param: str | None = getattr(request, "param", None)
    wanted = param or run.settings.device[0]
    if wanted == "cpu":
        return wanted  # asking torch would initialise CUDA for nothing
    view = run.view()
    requirement = request.node.stash.get(_REQUIREMENT, None)
    try:
        if wanted in ("auto", "all"):
            if requirement is not None and requirement.backend == "mps":
                return accelerator.check_device("mps", view)
            return accelerator.accelerator_device(view) or "cpu"
        return accelerator.check_device(wanted, view)
    except accelerator.DeviceUnavailable as exc:
        source = "device all" if param else run.settings.device_source
        reason = f"{exc} (from {source})"
        if view.backend is None:
            reason += f": {run.unusable_reason()}"
        if param and run.settings.gpu != "require":
            _skip(reason)
        pytest.fail(reason, pytrace=False)
