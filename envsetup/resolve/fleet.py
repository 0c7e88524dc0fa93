"""A fleet: several machine descriptions planned as one, for one shared environment.

Many nodes share one environment (a venv on a network file system, one container image), so
the build must run on all of them: the oldest driver sets the CUDA ceiling, every compute
capability present must have kernels in the wheel, and all nodes must share one platform. The
nodes are merged into one combined `Machine` that the ordinary resolver plans for; this module
then says which node forced each choice and what dropping (or upgrading) a node would buy.

Descriptions are the `envsetup detect --json` documents (one file, JSON Lines, or a JSON list)
or saved `nvidia-smi` outputs, collected through the scheduler the cluster already has.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envsetup.errors import UsageError
from envsetup.model.capability import ComputeCapability
from envsetup.model.machine import (
    SCHEMA_VERSION,
    Evidence,
    Gpu,
    Machine,
    MigDevice,
    Platform,
    Problem,
)

if TYPE_CHECKING:
    from envsetup.matrices import Matrices
    from envsetup.model.machine import Vendor
    from envsetup.model.plan import Plan, Request

__all__ = ["Fleet", "Node", "documents", "load", "machine_from_json", "plan_fleet"]


@dataclass(frozen=True)
class Node:
    """One machine of the fleet, with the name plans call it by and the file it came from."""

    name: str
    machine: Machine
    source: str

    @property
    def identity(self) -> str:
        """What makes two descriptions the same machine: its hostname and GPU UUIDs when it
        has a hostname (a node collected twice), else the whole description but the timings."""
        if self.machine.hostname:
            uuids = sorted(gpu.uuid or "" for gpu in self.machine.gpus)
            return json.dumps([self.machine.hostname, uuids])
        document = self.machine.to_json()
        document.pop("evidence")
        return json.dumps(document, sort_keys=True)


@dataclass(frozen=True)
class Fleet:
    """The distinct machines one environment must serve."""

    nodes: tuple[Node, ...]
    warnings: tuple[str, ...] = ()

    @property
    def names(self) -> list[str]:
        return [node.name for node in self.nodes]

    def without(self, names: Iterable[str]) -> Fleet:
        dropped = set(names)
        return Fleet(tuple(node for node in self.nodes if node.name not in dropped), self.warnings)

    def combined(self, matrices: Matrices | None = None, *, python: str | None = None) -> Machine:
        """One Machine that runs a build only where every node does (see the module doc)."""
        if matrices is None:
            from envsetup.matrices import load as load_matrices

            matrices = load_matrices()
        platform = _one_platform(self.nodes, python)
        from envsetup.resolve.rules import visible_gpus

        gpus: list[Gpu] = []
        warnings = list(self.warnings)
        errors: list[Problem] = []
        seen: set[tuple[str, str, str | None, str | None, str | None]] = set()
        for node in self.nodes:
            visible, notes = visible_gpus(node.machine)
            warnings += [f"node {node.name}: {text}" for text in (*node.machine.warnings, *notes)]
            errors += [
                replace(problem, message=f"node {node.name}: {problem.message}")
                for problem in node.machine.errors
            ]
            for gpu in visible:
                kind = (node.name, gpu.vendor, gpu.compute_capability, gpu.arch, gpu.name)
                if kind in seen:  # 8 identical GPUs in a node say no more than one
                    continue
                seen.add(kind)
                name = f"node {node.name}: {gpu.name or 'GPU ' + str(gpu.index)}"
                gpus.append(replace(gpu, index=len(gpus), name=name, mig_devices=()))
            if node.machine.nvidia_gpus and node.machine.driver_version is None:
                warnings.append(
                    f"node {node.name}: NVIDIA GPUs but no driver version; its driver cannot be "
                    "checked (collect it again with `envsetup detect --json` on the node)"
                )
        ceiling = _driver_ceiling(self.nodes, matrices)
        return Machine(
            hostname=self.nodes[0].name if len(self.nodes) == 1 else None,
            platform=platform,
            driver_version=None if ceiling is None else ceiling.driver,
            cuda_version=None if ceiling is None else ceiling.cuda,
            gpus=tuple(gpus),
            xpu=any(node.machine.xpu for node in self.nodes),
            warnings=tuple(warnings),
            errors=tuple(errors),
        )


# --------------------------------------------------------------------------- reading files


def load(files: Sequence[str], directories: Sequence[str] = (), *, smi_platform: Platform) -> Fleet:
    """The fleet the `--machine FILE` and `--machines DIR` arguments describe; a saved
    nvidia-smi output says nothing of the OS or Python, so it gets `smi_platform`."""
    paths = [Path(name) for name in files]
    for directory in directories:
        folder = Path(directory)
        if not folder.is_dir():
            raise UsageError(
                f"--machines {directory!r} is not a directory",
                hint="pass a folder of `envsetup detect --json` files, or use --machine FILE",
            )
        found = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
        if not found:
            raise UsageError(
                f"--machines {directory!r} holds no files",
                hint="collect one with `envsetup detect --json > DIR/$(hostname).json` per node",
            )
        paths += found
    nodes: list[Node] = []
    for path in paths:
        nodes += _read(path, smi_platform)
    distinct: dict[str, Node] = {}
    warnings: list[str] = []
    for node in nodes:
        first = distinct.setdefault(node.identity, node)
        differs = first is not node and _facts(first.machine) != _facts(node.machine)
        if differs and first.machine.hostname:
            warnings.append(
                f"node {node.name} is described twice with different facts "
                f"({first.source}, {node.source}); planning with {first.source}"
            )
    named: list[Node] = []
    taken: dict[str, int] = {}
    for node in distinct.values():
        count = taken[node.name] = taken.get(node.name, 0) + 1
        named.append(node if count == 1 else replace(node, name=f"{node.name}#{count}"))
    return Fleet(tuple(named), tuple(warnings))


def _facts(machine: Machine) -> tuple[object, ...]:
    return (machine.driver_version, machine.cuda_version, machine.platform, machine.gpus)


def _read(path: Path, smi_platform: Platform) -> list[Node]:
    try:
        text = path.read_bytes().decode("utf-8", "replace")
    except OSError as error:
        raise UsageError(f"cannot read the machine description {str(path)!r}: {error}") from None
    stripped = text.strip()
    if not stripped:
        raise UsageError(
            f"{path} is empty; expected `envsetup detect --json` or a saved nvidia-smi output",
            hint="a node whose collection failed leaves an empty file: collect it again",
        )
    if not stripped.startswith(("{", "[")):
        from envsetup.detect import machine_from_saved_output

        machine = machine_from_saved_output(str(path), platform=smi_platform)
        return [Node(name=path.stem, machine=machine, source=str(path))]
    found: list[tuple[str, Any]] = []
    for item in documents(path, stripped):
        found += [(str(path), element) for element in (item if isinstance(item, list) else [item])]
    if len(found) > 1:
        found = [(f"{path}[{i}]", document) for i, (_, document) in enumerate(found)]
    many = len(found) > 1
    nodes = []
    for position, (where, document) in enumerate(found, 1):
        machine = machine_from_json(document, where)
        name = machine.hostname or (f"{path.stem}-{position}" if many else path.stem)
        nodes.append(Node(name=name, machine=machine, source=where))
    return nodes


def documents(path: Path, text: str) -> list[Any]:
    """Every JSON value in `text`: one document, JSON Lines, or documents printed one after
    another (what `srun envsetup detect --json` or a loop of `kubectl exec` collects)."""
    decoder = json.JSONDecoder()
    found: list[Any] = []
    at = 0
    while at < len(text):
        if text[at].isspace():
            at += 1
            continue
        try:
            value, at = decoder.raw_decode(text, at)
        except ValueError as error:
            line = text.count("\n", 0, at) + 1
            raise UsageError(
                f"{path}: line {line} is not JSON ({getattr(error, 'msg', error)})",
                hint="expected `envsetup detect --json` documents: one file, a JSON list, or "
                "documents one after another (JSON Lines)",
            ) from None
        found.append(value)
    return found


def machine_from_json(document: Any, where: str) -> Machine:
    """The Machine an `envsetup detect --json` document describes (refusing anything else)."""
    expected = "expected the output of `envsetup detect --json`"
    if not isinstance(document, dict):
        raise UsageError(f"{where}: a JSON {type(document).__name__}, not an object; {expected}")
    if "checks" in document:
        raise UsageError(
            f"{where} is an `envsetup verify --json` report, not a machine description",
            hint="merge verify reports with `envsetup verify --merge FILES`",
        )
    version = document.get("schema_version", SCHEMA_VERSION)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise UsageError(
            f"{where}: schema_version {version!r}; this envsetup reads {SCHEMA_VERSION} and older",
            hint="upgrade envsetup here, or collect the description with this version",
        )
    try:
        platform = document["platform"]
        return Machine(
            hostname=document.get("hostname"),
            platform=Platform(
                os=str(platform["os"]),
                arch=str(platform["arch"]),
                python=str(platform["python"]),
                libc=platform.get("libc"),
                wsl=bool(platform.get("wsl")),
            ),
            driver_version=document.get("driver_version"),
            cuda_version=document.get("cuda_version"),
            gpus=tuple(_gpu(item) for item in document.get("gpus") or ()),
            visible_gpus=_optional_strings(document.get("visible_gpus")),
            device_nodes=document.get("device_nodes"),
            mps=bool(document.get("mps")),
            xpu=bool(document.get("xpu")),
            backend_override=document.get("backend_override"),
            evidence=tuple(Evidence(**item) for item in document.get("evidence") or ()),
            warnings=tuple(str(text) for text in document.get("warnings") or ()),
            errors=tuple(Problem(**item) for item in document.get("errors") or ()),
        )
    except (KeyError, TypeError, AttributeError, ValueError) as error:
        raise UsageError(
            f"{where}: not a machine description (missing or malformed {error})",
            hint=f"{expected}, run on each node",
        ) from None


def _gpu(item: dict[str, Any]) -> Gpu:
    return Gpu(
        index=int(item["index"]),
        name=item.get("name"),
        memory_mib=item.get("memory_mib"),
        compute_capability=_capability(item.get("compute_capability")),
        uuid=item.get("uuid"),
        bus_id=item.get("bus_id"),
        mig_enabled=item.get("mig_enabled"),
        mig_devices=tuple(MigDevice(**mig) for mig in item.get("mig_devices") or ()),
        vendor=_vendor(item.get("vendor") or "nvidia"),
        arch=item.get("arch"),
    )


def _capability(value: Any) -> str | None:
    """The "8.6" form of a described GPU's compute capability, whichever spelling the file uses
    ("sm_86", 8.6); a value that is none is a ValueError, not a GPU with no kernels anywhere."""
    if value is None:
        return None
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(ComputeCapability.parse(str(value)))
    raise ValueError(f'compute_capability {value!r}; expected e.g. "8.6"')


def _vendor(value: Any) -> Vendor:
    """A described GPU's maker; another name is a ValueError, not a GPU nobody counts."""
    if value == "nvidia":
        return "nvidia"
    if value == "amd":
        return "amd"
    raise ValueError(f"vendor {value!r}; expected nvidia or amd")


def _optional_strings(value: Any) -> tuple[str, ...] | None:
    return None if value is None else tuple(str(item) for item in value)


# --------------------------------------------------------------------------- combining


def _one_platform(nodes: Sequence[Node], python: str | None) -> Platform:
    """The fleet's one platform; a mix is refused, since no single build serves it."""
    if not nodes:
        raise UsageError("no machine described; pass --machine FILE or --machines DIR")
    keys: dict[str, list[str]] = {}
    for node in nodes:
        keys.setdefault(node.machine.platform.key, []).append(node.name)
    if len(keys) > 1:
        shown = "; ".join(f"{key}: {', '.join(names)}" for key, names in keys.items())
        raise UsageError(
            f"the fleet mixes platforms ({shown}); one environment cannot serve them, since "
            "every platform has its own wheels",
            hint="plan each platform on its own: --machines DIR with one folder per platform",
        )
    pythons: dict[str, list[str]] = {}
    for node in nodes:
        pythons.setdefault(node.machine.platform.python, []).append(node.name)
    first = nodes[0].machine.platform
    if python is None and len(pythons) > 1:
        shown = "; ".join(f"Python {tag}: {', '.join(names)}" for tag, names in pythons.items())
        raise UsageError(
            f"the fleet's descriptions name different Pythons ({shown})",
            hint="say which Python the shared environment uses: --python 3.11",
        )
    libcs = sorted({node.machine.platform.libc for node in nodes if node.machine.platform.libc})
    return replace(
        first,
        python=python or first.python,
        libc=libcs[0] if libcs else None,
        wsl=any(node.machine.platform.wsl for node in nodes),
    )


@dataclass(frozen=True)
class _Ceiling:
    """The node whose driver runs the oldest CUDA: it sets the fleet's driver floor."""

    node: str
    driver: str | None
    cuda: str | None


def _driver_ceiling(nodes: Sequence[Node], matrices: Matrices) -> _Ceiling | None:
    from envsetup.model.variants import version_tuple

    found: list[tuple[tuple[int, ...], tuple[int, ...], _Ceiling]] = []
    for node in nodes:
        machine = node.machine
        if machine.driver_version is None and machine.cuda_version is None:
            continue
        cuda = machine.cuda_version
        if cuda is None and machine.driver_version is not None:
            cuda = matrices.max_cuda_for_driver(machine.driver_version, machine.platform.os)
        order = version_tuple(cuda or "0.0")[:2]
        driver = version_tuple(machine.driver_version or "0", 3)
        found.append((order, driver, _Ceiling(node.name, machine.driver_version, cuda)))
    return min(found, key=lambda item: item[:2])[2] if found else None


# --------------------------------------------------------------------------- planning


def plan_fleet(
    fleet: Fleet,
    request: Request,
    *,
    python: str | None = None,
    installed: dict[str, str] | None = None,
) -> Plan:
    """The newest build every node runs, saying which node forced each choice and what
    dropping a node (or upgrading its driver) would buy."""
    from envsetup.matrices import load as load_matrices
    from envsetup.resolve import resolve

    matrices = load_matrices()
    plan = resolve(fleet.combined(matrices, python=python), request, installed=installed)
    reasons = [
        f"one build for {len(fleet.nodes)} machine(s) of the fleet: {', '.join(fleet.names)}",
        *_why(fleet, plan, matrices),
    ]
    alternatives = _what_if(fleet, plan, request, python, matrices)
    return replace(
        plan,
        reasons=(*reasons, *plan.reasons),
        alternatives=(*alternatives, *plan.alternatives),
    )


def _why(fleet: Fleet, plan: Plan, matrices: Matrices) -> list[str]:
    from envsetup.matrices.schema import arch_name

    lines: list[str] = []
    if plan.variant.startswith("cu"):
        ceiling = _driver_ceiling(fleet.nodes, matrices)
        if ceiling is not None and ceiling.cuda is not None:
            driver = f"driver {ceiling.driver}" if ceiling.driver else "driver"
            lines.append(
                f"{plan.variant}: node {ceiling.node}'s {driver} runs CUDA ≤ {ceiling.cuda}, "
                "the oldest in the fleet"
            )
        needed: dict[str, list[str]] = {}
        for node in fleet.nodes:
            for gpu in node.machine.nvidia_gpus:
                if gpu.compute_capability:
                    sm = arch_name(gpu.compute_capability)
                    if node.name not in needed.setdefault(sm, []):
                        needed[sm].append(node.name)
        if needed:
            shown = ", ".join(
                f"{sm} (node {', '.join(names)})" for sm, names in sorted(needed.items())
            )
            archs = plan.release and matrices.arch_list(plan.release, plan.variant, plan.platform)
            listed = f" (arch list {' '.join(archs.get_arch_list())})" if archs else ""
            lines.append(
                f"torch {plan.torch} {plan.variant} has kernels for every GPU: {shown}{listed}"
            )
    return lines


def _what_if(
    fleet: Fleet, plan: Plan, request: Request, python: str | None, matrices: Matrices
) -> list[str]:
    """What a node costs the fleet: the plan without it, and with its driver upgraded."""
    from envsetup.errors import EnvsetupError
    from envsetup.model.variants import parse_variant
    from envsetup.resolve import resolve
    from envsetup.resolve.rules import driver_floor

    def attempt(machine: Machine) -> Plan | None:
        try:
            return resolve(machine, request)
        except EnvsetupError:
            return None

    def better(other: Plan | None) -> bool:
        return other is not None and (other.torch, other.variant) != (plan.torch, plan.variant)

    ideas: list[str] = []
    if len(fleet.nodes) > 1:
        for names in _groups(fleet):
            if len(names) == len(fleet.nodes):
                continue  # all alike: nothing would be left to plan for
            rest = fleet.without(names)
            other = attempt(rest.combined(matrices, python=python))
            if better(other):
                assert other is not None
                who = names[0] if len(names) == 1 else f"{names[0]} (and {len(names) - 1} alike)"
                ideas.append(
                    f"without node {who}: torch {other.torch} {other.variant} for the others"
                )
    ceiling = _driver_ceiling(fleet.nodes, matrices)
    if ceiling is not None and ceiling.driver is not None:
        upgraded = [
            node
            if node.name != ceiling.node
            else replace(
                node, machine=replace(node.machine, driver_version=None, cuda_version=None)
            )
            for node in fleet.nodes
        ]
        other = attempt(Fleet(tuple(upgraded)).combined(matrices, python=python))
        if better(other) and other is not None and other.variant.startswith("cu"):
            floor = driver_floor(
                matrices, parse_variant(other.variant), plan.platform.split("-")[0]
            )
            ideas.append(
                f"upgrading node {ceiling.node}'s driver {ceiling.driver} to ≥ {floor} would allow "
                f"torch {other.torch} {other.variant}"
            )
    return ideas


def _groups(fleet: Fleet) -> list[list[str]]:
    """Nodes alike in what constrains a build (driver, CUDA, GPU kinds): dropping one of
    several alike changes nothing, so each group is dropped whole."""
    groups: dict[tuple[object, ...], list[str]] = {}
    for node in fleet.nodes:
        machine = node.machine
        kinds = sorted(
            {(gpu.vendor, gpu.compute_capability or "", gpu.arch or "") for gpu in machine.gpus}
        )
        key = (machine.driver_version, machine.cuda_version, tuple(kinds))
        groups.setdefault(key, []).append(node.name)
    return list(groups.values())


# --------------------------------------------------------------------------- CI jobs
