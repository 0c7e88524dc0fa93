"""pytest plugin (entry point `envsetup`): the `gpu` marker, the `device` fixture, a header line
and one GPU per xdist worker.

Hooks only; the decisions live in `envsetup.accelerator` and `envsetup.plugin_options`. This
module is imported on every pytest run of every project that has envsetup installed, so it
imports neither torch nor the probes at module level: the machine is detected once per process
when first needed (the header, xdist setup, a diagnosis), and torch is imported only when a `gpu`
test or the `device` fixture runs.
"""

from __future__ import annotations

import functools
import os
import sys
from importlib.metadata import PackageNotFoundError, distribution
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from envsetup import accelerator
from envsetup.plugin_options import DEVICE_HELP, GPU_HELP, Settings, load_settings

if TYPE_CHECKING:
    from envsetup.machine import Machine

MARKER = (
    "gpu(count=1, min_memory=None, min_capability=None, min_cuda=None, backend=None): the test "
    "needs an accelerator torch can use (backend 'cuda', 'rocm' or 'mps'); unmet conditions "
    "skip it, --gpu require makes an unusable GPU fail it (envsetup)"
)


class _Run:
    """Per-process state of one test run: settings plus lazily detected facts, each found once."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self._machine: Machine | None = None
        self._view: accelerator.TorchView | None = None
        self._unusable: str | None = None

    def machine(self) -> Machine:
        if self._machine is None:
            from envsetup.detect import detect

            self._machine = detect(environ=os.environ)
        return self._machine

    def view(self) -> accelerator.TorchView:
        if self._view is None:
            self._view = accelerator.probe_torch()
        return self._view

    def unusable_reason(self) -> str:
        """Why torch uses no accelerator, with the planner's fix when a GPU is present."""
        if self._unusable is None:
            view, machine = self.view(), self.machine()
            fix = functools.partial(accelerator.fix_command, machine, view.version)
            self._unusable = accelerator.why_unusable(view, machine, fix)
        return self._unusable

    def workerinput(self) -> dict[str, Any] | None:
        return getattr(self.config, "workerinput", None)

    def worker_gpus(self) -> tuple[str, tuple[str, ...]]:
        """The variable and entries xdist workers are pinned to; no entries: no pinning (the
        user chose devices by index or wants all, or there is no GPU)."""
        if self.settings.device not in (("auto",), ("cuda",)):
            return "CUDA_VISIBLE_DEVICES", ()
        return accelerator.worker_gpus(self.machine(), os.environ)

    def param_devices(self) -> tuple[str, ...] | None:
        """Devices `device` is parametrized over (`all` or a list), identical on every worker."""
        if self.settings.device == ("all",):
            given = (self.workerinput() or {}).get("envsetup_devices")
            if given is not None:
                return tuple(given)
            return accelerator.devices_from_machine(self.machine())
        return self.settings.device if len(self.settings.device) > 1 else None


_RUN = pytest.StashKey[_Run]()
_REQUIREMENT = pytest.StashKey[accelerator.GpuRequirement]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("envsetup", "envsetup: gpu marker and device fixture")
    group.addoption("--device", dest="envsetup_device", metavar="DEVICE", help=DEVICE_HELP)
    group.addoption("--gpu", dest="envsetup_gpu", metavar="MODE", help=GPU_HELP)
    parser.addini("envsetup_device", DEVICE_HELP)
    parser.addini("envsetup_gpu", GPU_HELP)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER)
    try:
        settings = load_settings(
            cli_device=config.getoption("envsetup_device"),
            cli_gpu=config.getoption("envsetup_gpu"),
            environ=os.environ,
            ini_device=config.getini("envsetup_device") or None,
            ini_gpu=config.getini("envsetup_gpu") or None,
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
    once, at its first call)."""
    entries: list[str] = workerinput["envsetup_gpus"]
    index = int(str(workerinput["workerid"]).removeprefix("gw"))
    os.environ[workerinput["envsetup_gpu_variable"]] = entries[index % len(entries)]
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        message = "envsetup: CUDA was initialised before pytest_configure (at conftest import?), "
        message += "so this xdist worker sees every GPU instead of its own"
        config.issue_config_time_warning(pytest.PytestWarning(message), stacklevel=2)


class _XdistHooks:
    """Controller-side xdist hooks, registered only when xdist is installed."""

    def __init__(self, run: _Run) -> None:
        self.run = run
        self.warned = False

    def pytest_configure_node(self, node: Any) -> None:
        """Hand each worker the facts the controller detected, so workers neither probe again
        nor disagree on collection."""
        run = self.run
        if run.settings.device == ("all",):
            node.workerinput["envsetup_devices"] = list(run.param_devices() or ())
        variable, entries = run.worker_gpus()
        if not entries:
            return
        node.workerinput["envsetup_gpus"] = list(entries)
        node.workerinput["envsetup_gpu_variable"] = variable
        workers = int(node.workerinput["workercount"])
        if workers > len(entries) and not self.warned:
            self.warned = True
            message = f"envsetup: {workers} xdist workers share {len(entries)} GPU(s) round-robin"
            run.config.issue_config_time_warning(pytest.PytestWarning(message), stacklevel=2)


def pytest_report_header(config: pytest.Config) -> list[str]:
    run = config.stash[_RUN]
    machine = run.machine()
    try:
        torch = distribution("torch")
    except PackageNotFoundError:
        torch_version, build = None, accelerator.torch_dist_build(None)
    else:
        torch_version = torch.version
        build = accelerator.torch_dist_build(torch_version, torch.requires or ())
    gpus = accelerator.describe_gpus(machine) or "no GPU detected"
    hardware = "; ".join(filter(None, (gpus, accelerator.driver_summary(machine))))
    settings = run.settings
    chosen = settings.device_label
    if settings.device == ("auto",):
        chosen = f"auto → {accelerator.expected_device(machine, build)}"
    elif settings.device == ("all",):
        chosen = f"all → {', '.join(run.param_devices() or ())}"
    torch_label = f"torch {torch_version} ({build})" if torch_version else "torch not installed"
    lines = [
        f"envsetup: {hardware}",
        f"envsetup: {torch_label}; device {chosen}; gpu tests {settings.gpu}",
    ]
    workers = config.getoption("numprocesses", None)  # an int once xdist has read "-n auto"
    if isinstance(workers, int) and workers > 0:
        variable, entries = run.worker_gpus()
        if entries:
            shared = " (shared round-robin)" if workers > len(entries) else ""
            pinned = f"{variable}={','.join(entries)}"
            lines.append(f"envsetup: xdist: {workers} workers, one GPU each from {pinned}{shared}")
    if machine.gpus and accelerator.cpu_only(build):
        lines.append(
            f"envsetup: warning: a GPU is present but {torch_label} cannot use it; gpu tests "
            "will be skipped (--gpu require fails them)"
        )
    return lines


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    run = config.stash[_RUN]
    errors: dict[str, str] = {}
    gpu_items: list[pytest.Item] = []
    for item in items:
        marker = item.get_closest_marker("gpu")
        if marker is None:
            continue
        try:
            requirement = accelerator.requirement_from_marker(marker.args, marker.kwargs)
        except ValueError as exc:
            test = item.nodeid.partition("[")[0]
            errors.setdefault(test, f"{test}: invalid @pytest.mark.gpu: {exc}")
            continue
        item.stash[_REQUIREMENT] = requirement
        gpu_items.append(item)
    if errors:
        raise pytest.UsageError("\n".join(errors.values()))
    mode, source = run.settings.gpu, run.settings.gpu_source
    if mode == "skip":
        for item in gpu_items:
            item.add_marker(
                pytest.mark.skip(reason=f"gpu tests skipped by --gpu skip (from {source})")
            )
    elif mode == "only":
        kept = set(map(id, gpu_items))
        dropped = [item for item in items if id(item) not in kept]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = gpu_items


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "device" not in metafunc.fixturenames:
        return
    devices = metafunc.config.stash[_RUN].param_devices()
    if devices is None or _parametrizes_device(metafunc):
        return
    if metafunc.definition.get_closest_marker("gpu") is not None:
        devices = tuple(name for name in devices if name != "cpu")
    if devices:
        metafunc.parametrize("device", devices, indirect=True, ids=devices)


def _parametrizes_device(metafunc: pytest.Metafunc) -> bool:
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
    run = item.config.stash[_RUN]
    if run.settings.device == ("cpu",):
        _skip(f"gpu test, but --device cpu (from {run.settings.device_source}) forces the CPU")
    view = run.view()
    if view.backend is None:
        reason = run.unusable_reason()
        if run.settings.gpu == "require":
            pytest.fail(f"--gpu require (from {run.settings.gpu_source}): {reason}", pytrace=False)
        _skip(reason)
    missing = accelerator.unmet(requirement, view)
    if missing:
        _skip("gpu: " + "; ".join(missing))


def _skip(reason: str) -> NoReturn:
    """Skip, reported at the test's location rather than at this plugin's line."""
    raise pytest.skip.Exception(reason, _use_item_location=True)


@pytest.fixture
def device(request: pytest.FixtureRequest) -> Any:
    """A `torch.device`: the accelerator torch can use (the worker's GPU under xdist), else
    cpu; in a `gpu` test, the accelerator; forced by --device / ENVSETUP_DEVICE."""
    run = request.config.stash[_RUN]
    name = _device_name(run, request)
    import torch

    return torch.device(name)


def _device_name(run: _Run, request: pytest.FixtureRequest) -> str:
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
        source = "--device all" if param else run.settings.device_source
        reason = f"{exc} (from {source})"
        if view.backend is None:
            reason += f": {run.unusable_reason()}"
        if param and run.settings.gpu != "require":
            _skip(reason)
        pytest.fail(reason, pytrace=False)
