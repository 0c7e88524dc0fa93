"""Pure decisions: from a Machine and a Request to a Plan, with a reason for every choice.

The rules (docs/cli.md "How envsetup chooses"): the driver's minor-version-compatibility floor is a
hard limit; every visible GPU's compute capability must be in the wheel; a wheel must exist for
the Python and platform; the newest torch wins, then the best variant for it; companions are
pinned to their paired versions from the same index. Facts come from `envsetup.matrices`; this
module only applies them, and never runs a subprocess.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, NoReturn

from packaging.version import Version

from envsetup.errors import EnvsetupError, UsageError
from envsetup.model.machine import Gpu, Machine
from envsetup.model.plan import TORCH_FAMILY, ChannelPin, Fact, Plan, Request
from envsetup.model.variants import KIND_LABELS, Variant, parse_variant, version_tuple
from envsetup.model.visibility import describe_ignored, visible

if TYPE_CHECKING:
    from packaging.specifiers import SpecifierSet

    from envsetup.matrices import Matrices, Release
    from envsetup.matrices.family import Package as FamilyPackage

__all__ = [
    "COMPANIONS",
    "NoCompatibleBuild",
    "driver_at_least",
    "first_fit",
    "parse_companions",
    "parse_torch_spec",
    "resolve",
    "torch_pin",
    "visible_gpus",
]

#: Packages `--with` accepts; each is pinned to the version paired with the chosen torch.
COMPANIONS = tuple(name for name in TORCH_FAMILY if name != "torch")

_SAFE_SCHEMES = ("https://", "file://")


class NoCompatibleBuild(EnvsetupError):
    """No torch build satisfies the machine and the request; the hint lists what would."""


# --------------------------------------------------------------------------- request parsing


#: A PEP 508 name followed by a specifier ("torchvision>=0.20"); extras and markers are not
#: accepted (they mean nothing for a pin). Parsed here rather than with packaging.requirements,
#: whose grammar costs more start-up time than the rest of `envsetup plan`.
_NAMED = re.compile(r"([A-Za-z][A-Za-z0-9._-]*)\s*(.*)", re.DOTALL)


def _requirement(text: str) -> tuple[str | None, SpecifierSet]:
    """("torchvision", >=0.20) from "TorchVision>=0.20"; (None, spec) for a bare specifier."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    if len(text) > 200:  # also keeps int() below its digit limit (a ValueError otherwise)
        raise InvalidSpecifier(f"{len(text)} characters; a torch requirement is far shorter")
    match = _NAMED.fullmatch(text)
    name, rest = (match[1], match[2]) if match else (None, text)
    spec = SpecifierSet(rest)  # raises InvalidSpecifier
    return (None if name is None else re.sub(r"[-_.]+", "-", name).lower()), spec


def parse_torch_spec(text: str | None) -> SpecifierSet:
    """`2.5.1` → ==2.5.1, `2.5` → ==2.5.*, or any PEP 440 specifier / `torch<2.6` requirement."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    if text is None or not text.strip():
        return SpecifierSet()
    value = text.strip()
    try:
        version = Version(value)
    except ValueError:  # InvalidVersion, or a number too long for int()
        pass
    else:
        if len(version.release) == 2 and not version.is_prerelease and not version.local:
            return SpecifierSet(f"=={value}.*")
        return SpecifierSet(f"=={value}")
    try:
        name, spec = _requirement(value)
    except InvalidSpecifier as error:
        raise UsageError(
            f"--torch {value!r} is not a valid PEP 440 version or specifier ({error})",
            hint="use an exact version (2.5.1) or a specifier ('>=2.4,<2.6')",
        ) from None
    if name not in (None, "torch"):
        raise UsageError(
            f"--torch {value!r} names {name!r}; expected a torch version or specifier such as "
            "2.5.1, '>=2.4,<2.6' or 'torch~=2.5.0'"
        )
    return spec


def torch_pin(text: str | None) -> SpecifierSet | None:
    """The --torch constraint, or None for any release: the unpinned (usual) plan then never
    imports packaging.specifiers, ~15 ms of a ~80 ms `envsetup plan`."""
    if text is None or not text.strip():
        return None
    return parse_torch_spec(text) or None  # "torch" alone pins nothing


def parse_companions(items: Iterable[str]) -> dict[str, SpecifierSet]:
    """`torchvision`, `torchaudio>=2.5` → {name: specifier}; anything else is a usage error."""
    companions: dict[str, SpecifierSet] = {}
    for item in items:
        if not item.strip():
            continue
        try:
            name, spec = _requirement(item.strip())
        except ValueError as error:  # InvalidSpecifier; caught as its base to import it lazily
            raise UsageError(
                f"--with {item!r} is not a valid PEP 440 requirement ({error})",
                hint="list companions by name, e.g. --with torchvision,torchaudio",
            ) from None
        if name is None or (name not in COMPANIONS and _family_package(name) is None):
            from envsetup.matrices.family import load_family

            family = ", ".join(load_family().packages)
            raise UsageError(
                f"--with {item!r}: envsetup pins only {', '.join(COMPANIONS)} and the "
                f"PyTorch-index family in matrices/family.toml ({family})",
                hint="install other packages with your usual installer after torch",
            )
        companions[name] = spec
    return companions


def _check_url(url: str, what: str, allow_insecure: bool) -> str:
    if not allow_insecure and not url.startswith(_SAFE_SCHEMES):
        raise UsageError(
            f"{what} {url!r} is neither https:// nor file://",
            hint="use an https mirror, or pass --allow-insecure-index if you trust this network",
        )
    if any(char.isspace() for char in url):
        raise UsageError(f"{what} {url!r} contains whitespace; expected a URL")
    return url.rstrip("/")


# --------------------------------------------------------------------------- rule functions


def driver_at_least(driver: str, floor: str) -> bool:
    """Compare NVIDIA driver versions numerically ("535.104.05" ≥ "525.60.13")."""
    return version_tuple(driver, 3) >= version_tuple(floor, 3)


def visible_gpus(machine: Machine) -> tuple[tuple[Gpu, ...], tuple[str, ...]]:
    """The GPUs CUDA lets torch see (envsetup.model.visibility's rule), other vendors' GPUs,
    notes."""
    if machine.visible_gpus is None or not machine.nvidia_gpus:
        return machine.gpus, ()  # nothing enumerated: visibility cannot narrow anything
    seen = visible(machine)
    notes = [describe_ignored(seen)] if seen.ignored else []
    others = tuple(gpu for gpu in machine.gpus if gpu.vendor != "nvidia")
    hidden = len(machine.nvidia_gpus) - len(seen.gpus)
    if hidden:
        notes.append(
            f"CUDA_VISIBLE_DEVICES hides {hidden} of {len(machine.nvidia_gpus)} NVIDIA GPU(s); "
            "only the visible ones count"
        )
    return seen.gpus + others, tuple(notes)


def _describe_gpu(gpu: Gpu) -> str:
    name = gpu.name or "unnamed GPU"
    return f"GPU {gpu.index} ({name})"


# --------------------------------------------------------------------------- resolution


@dataclass
class _Context:
    """What the rules need to know about this machine, computed once."""

    machine: Machine
    request: Request
    matrices: Matrices
    platform: str
    os: str
    python: str
    gpus: tuple[Gpu, ...]
    target: str  # "cuda" | "rocm" | "xpu" | "cpu"
    forced: Variant | None  # an exact variant the user forced
    max_cuda: str | None
    driver: str | None
    base: str  # index URL base (PyTorch's or a mirror)
    links: str | None  # flat find-links base of a mirror
    #: companions the target environment has but the request did not name: kept paired when
    #: the chosen torch has a partner, never a reason to hold torch back
    installed: dict[str, str]
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def nvidia(self) -> tuple[Gpu, ...]:
        return tuple(gpu for gpu in self.gpus if gpu.vendor == "nvidia")

    @property
    def amd(self) -> tuple[Gpu, ...]:
        return tuple(gpu for gpu in self.gpus if gpu.vendor == "amd")


@dataclass(frozen=True)
class _Choice:
    """A variant that passed every rule for one release, with why it was picked."""

    variant: Variant
    reasons: tuple[str, ...]
    warnings: tuple[str, ...] = ()
    minor_compat: bool = False  # newer than the driver's CUDA: runs through minor-version compat
    #: the GPU-code facts this choice rests on that no primary source confirms (empty: all are)
    inferred: tuple[str, ...] = ()


def resolve(
    machine: Machine,
    request: Request,
    matrices: Matrices | None = None,
    *,
    installed: dict[str, str] | None = None,
) -> Plan:
    """Decide the exact wheels and index for `machine`, or raise NoCompatibleBuild."""
    if matrices is None:
        from envsetup.matrices import load

        matrices = load()
    spec = torch_pin(request.torch)
    companions: dict[str, SpecifierSet | None] = {**parse_companions(request.with_)}
    spec = _user_constraints(request, spec, companions)
    base = _check_url(request.index_url_base, "--index-url-base", request.allow_insecure_index)
    links = (
        None
        if request.find_links_base is None
        else _check_url(request.find_links_base, "--find-links-base", request.allow_insecure_index)
    )
    if request.policy not in ("compat", "strict"):
        raise UsageError(f"--policy {request.policy!r}: expected compat or strict")
    if request.channel not in ("stable", "test", "nightly"):
        raise UsageError(f"--channel {request.channel!r}: expected stable, test or nightly")
    bystanders = {
        name: version
        for name, version in (installed or {}).items()
        if name in COMPANIONS and name not in companions
    }
    context = _context(machine, request, matrices, base, links, installed=bystanders)
    if request.channel != "stable":
        plan = _channel_plan(context, spec, {**companions, **dict.fromkeys(context.installed)})
    else:
        plan = _stable_plan(context, spec, companions)
    if request.constraints or request.follow_up:
        said = [
            f"{name}{specifier} ({origin}) constrains the choice"
            for name, specifier, origin in request.constraints
        ]
        plan = replace(
            plan,
            reasons=(*plan.reasons, *said, *request.user_notes),
            follow_up=request.follow_up,
        )
    return _with_installed(plan, installed or {}, matrices)


def _user_constraints(
    request: Request, spec: SpecifierSet | None, companions: dict[str, SpecifierSet | None]
) -> SpecifierSet | None:
    """Fold the torch-family specifiers of the user's requirement files into the request:
    torch's into the torch specifier, a companion's into `--with` (it is then pinned too)."""
    if not request.constraints:
        return spec  # keeps the usual plan free of the specifier grammar's import
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    for name, specifier, origin in request.constraints:
        try:
            wanted = SpecifierSet(specifier)
        except InvalidSpecifier:
            raise UsageError(f"{origin}: {name}{specifier} is not a valid specifier") from None
        if name == "torch":
            spec = wanted if spec is None else spec & wanted
        elif name in COMPANIONS:
            have = companions.get(name)
            companions[name] = wanted if have is None else have & wanted
    return spec or None


def first_fit(
    machine: Machine, requests: Iterable[Request], *, installed: dict[str, str] | None = None
) -> Plan | None:
    """The plan of the first request any build satisfies, None when none does: a suggested fix
    keeps what the user has (the installed release) when it can, else takes the planner's best."""
    for request in requests:
        try:
            return resolve(machine, request, installed=installed)
        except EnvsetupError:
            continue
    return None


def _context(
    machine: Machine,
    request: Request,
    matrices: Matrices,
    base: str,
    links: str | None,
    *,
    installed: dict[str, str],
) -> _Context:
    gpus, notes = visible_gpus(machine)
    backend = request.backend
    reasons: list[str] = []
    if backend == "auto" and machine.backend_override:
        backend = machine.backend_override
        from envsetup.detect.findings import source_of

        source = source_of(machine.evidence, "backend_override", backend) or "the environment"
        reasons.append(f"backend {backend} forced by {source}")
    elif backend != "auto":
        reasons.append(f"backend {backend} requested with --backend")
    forced: Variant | None = None
    os_name = machine.platform.os
    if backend in ("cuda", "rocm"):
        target = backend
    elif backend == "auto":
        target = _auto_target(machine, gpus, os_name, reasons)
    else:
        try:
            forced = parse_variant(backend)
        except ValueError as error:
            raise UsageError(f"--backend: {error}") from None
        target = forced.kind
    if os_name == "macos" and target != "cpu":
        raise NoCompatibleBuild(
            f"backend {backend} is not available on macOS: PyTorch publishes only PyPI wheels "
            "(CPU and Apple MPS) for macOS",
            hint="drop --backend, or plan for another machine with --platform",
        )
    if target == "rocm" and os_name != "linux":
        raise NoCompatibleBuild(
            f"ROCm builds exist only for Linux on download.pytorch.org, not {machine.platform.key}",
            hint="use --backend cpu, or plan for a Linux machine",
        )
    max_cuda, driver_reason = _driver_max_cuda(machine, matrices)
    if target == "cuda" and driver_reason:
        reasons.append(driver_reason)
    if target == "rocm":
        notes = (*notes, *_gfx_check(gpus, matrices, request.policy))
    return _Context(
        machine=machine,
        request=request,
        matrices=matrices,
        platform=machine.platform.key,
        os=os_name,
        python=machine.platform.python,
        gpus=gpus,
        target=target,
        forced=forced,
        max_cuda=max_cuda,
        driver=machine.driver_version,
        base=base,
        links=links,
        installed=installed,
        reasons=reasons,
        warnings=[
            *(f"detection: {problem.message}" for problem in machine.errors),
            *machine.warnings,
            *notes,
        ],
    )


def _auto_target(machine: Machine, gpus: tuple[Gpu, ...], os_name: str, reasons: list[str]) -> str:
    nvidia = [gpu for gpu in gpus if gpu.vendor == "nvidia"]
    amd = [gpu for gpu in gpus if gpu.vendor == "amd"]
    if os_name == "macos":
        reasons.append("macOS: the PyPI wheels are the only builds and include Apple MPS")
        return "cpu"
    if nvidia:
        return "cuda"
    if machine.driver_version and not machine.gpus and not visible(machine).hides_all:
        return "cuda"  # a driver but no GPU list (e.g. only /proc was readable)
    if amd:
        if os_name != "linux":
            reasons.append("AMD GPU on Windows: PyTorch publishes ROCm wheels only for Linux")
            return "cpu"
        return "rocm"
    if machine.xpu:
        return "xpu"
    if machine.gpus and not gpus:
        reasons.append("no GPU is visible (CUDA_VISIBLE_DEVICES hides them all): CPU build")
    elif any(problem.kind != "not_found" for problem in machine.errors):
        _refuse_unreadable(machine)
    else:
        reasons.append("no GPU found: CPU build")
    return "cpu"


def _gfx_check(gpus: tuple[Gpu, ...], matrices: Matrices, policy: str) -> list[str]:
    """A gfx target no ROCm build lists is refused up front; a ROCm plan with no gfx target
    known is unchecked, which the plan says (and `--policy strict` refuses)."""
    known = {target for row in matrices.rocm for target in row.gfx}
    given = sorted({gpu.arch for gpu in gpus if gpu.vendor == "amd" and gpu.arch})
    unlisted = [target for target in given if target not in known]
    if unlisted:
        raise NoCompatibleBuild(
            f"no ROCm build of torch lists {', '.join(unlisted)} among its gfx targets "
            f"(matrices/archs.toml knows {', '.join(sorted(known, key=_gfx_key))})",
            hint="check the target with `rocminfo | grep gfx`; an unlisted GPU can only run "
            "the CPU build (--backend cpu) or a torch built from source for it",
        )
    if given:
        return []
    message = (
        "no AMD GPU's gfx target is known, so the ROCm build's gfx targets were not checked "
        "against this machine: pass --amd-arch gfxNNNN (or UV_AMD_GPU_ARCHITECTURE=gfxNNNN; "
        "`rocminfo | grep gfx` prints it)"
    )
    if policy == "strict":
        raise NoCompatibleBuild(message, hint="--policy strict refuses unchecked GPU code")
    return [message]


def _gfx_key(target: str) -> tuple[int, str]:
    return len(target), target


def _refuse_unreadable(machine: Machine) -> NoReturn:
    """An NVIDIA stack that is there but cannot be read is not a CPU machine: planning the CPU
    build would install the silent failure envsetup exists to prevent, so the user decides."""
    problem = next(problem for problem in machine.errors if problem.kind != "not_found")
    raise EnvsetupError(
        f"an NVIDIA GPU or driver seems present but could not be read: {problem.message}",
        hint=(f"{problem.hint} " if problem.hint else "")
        + "Or say what to plan for: --driver VERSION (or ENVSETUP_CUDA_DRIVER_VERSION) for a "
        "CUDA build, --backend cpu for the CPU build",
    )


def _driver_max_cuda(machine: Machine, matrices: Matrices) -> tuple[str | None, str | None]:
    driver = machine.driver_version
    if machine.cuda_version:
        where = f"driver {driver}" if driver else "the driver"
        return machine.cuda_version, (
            f"{where} supports CUDA ≤ {machine.cuda_version} (the CUDA Version it reports)"
        )
    if driver:
        cuda = matrices.max_cuda_for_driver(driver, machine.platform.os)
        if cuda:
            return cuda, f"driver {driver} supports CUDA ≤ {cuda} (NVIDIA's driver table)"
        return None, f"driver {driver} is older than every CUDA release envsetup knows"
    return None, None


# --- rule 1: the driver


def driver_floor(matrices: Matrices, variant: Variant, os: str) -> str | None:
    """The minimum driver for a cuXY variant: the MVC floor of its major, else the toolkit's."""
    major = variant.cuda_major
    assert major is not None and variant.cuda is not None
    floor = matrices.minor_compat_floor(major, os)
    return floor if floor is not None else matrices.toolkit_driver(variant.cuda, os)


def _driver_verdict(context: _Context, variant: Variant) -> str | None:
    """Why the driver cannot run `variant`, or None when it can (rule 1)."""
    return driver_verdict(
        context.matrices,
        variant,
        os=context.os,
        driver=context.driver,
        max_cuda=context.max_cuda,
        strict=context.request.policy == "strict",
    )


def driver_verdict(
    matrices: Matrices,
    variant: Variant,
    *,
    os: str,
    driver: str | None,
    max_cuda: str | None,
    strict: bool = False,
) -> str | None:
    """Why a driver cannot run a cuXY build, or None when it can (rule 1).

    A build at or below the CUDA version the driver reports runs natively; above it, only
    through minor-version compatibility within the same major, which needs the major's floor.
    The resolver and `verify` both ask this, so a plan and a check never disagree.
    """
    cuda = version_tuple(variant.cuda or "0.0")[:2]
    floor = driver_floor(matrices, variant, os)
    needs = f"{variant} needs driver ≥ {floor}" if floor else f"{variant} needs a newer driver"
    if max_cuda is not None:
        limit = version_tuple(max_cuda)[:2]
        if cuda <= limit:
            return None
        if strict:
            return f"{variant} is newer than CUDA {max_cuda} (--policy strict)"
        if cuda[0] > limit[0]:
            return needs
    if driver is not None:
        if floor is not None and not driver_at_least(driver, floor):
            return needs
        if floor is None:
            return f"no driver minimum is known for {variant}"
    return None


# --- rule 2: the GPUs


def _gpu_verdict(
    context: _Context, release: str, variant: Variant
) -> tuple[str | None, tuple[str, ...]]:
    """Why `variant` lacks code for some visible GPU (None when all are covered) + notes."""
    if variant.kind == "cuda":
        gpus = context.nvidia
        archs = context.matrices.arch_list(release, variant.name, context.platform)
        if not gpus:
            return None, ()
        known = [gpu for gpu in gpus if gpu.compute_capability]
        notes = tuple(
            f"compute capability of {_describe_gpu(gpu)} is unknown; cannot check that the "
            "wheel has code for it (pass --compute-cap)"
            for gpu in gpus
            if not gpu.compute_capability
        )
        strict = context.request.policy == "strict"
        if archs is None:
            if known and strict:
                return f"{variant}'s GPU architectures are not recorded (--policy strict)", notes
            if known:
                notes += (
                    f"the GPU architectures of torch {release} {variant} are not recorded; "
                    "cannot confirm it has code for " + _sm_list(known),
                )
            return None, notes
        missing = [gpu for gpu in known if not archs.covers(gpu.compute_capability or "")]
        if missing:
            return f"{variant} lacks code for {_sm_list(missing)}", notes
        if known and strict and not archs.confirmed:
            return (
                f"{variant}'s arch list is inferred, not confirmed (--policy strict refuses "
                "inferred facts)",
                notes,
            )
        return None, notes
    if variant.kind == "rocm":
        targets = context.matrices.rocm_targets(variant.name)
        amd = context.amd
        unknown = tuple(
            f"gfx target of {_describe_gpu(gpu)} is unknown; cannot check {variant} supports it"
            for gpu in amd
            if not gpu.arch
        )
        if targets is None:
            return None, (
                *unknown,
                f"the gfx targets of {variant} are not recorded; cannot confirm it supports "
                + (", ".join(sorted({gpu.arch for gpu in amd if gpu.arch})) or "this GPU"),
            )
        missing_gfx = sorted({gpu.arch for gpu in amd if gpu.arch and gpu.arch not in targets})
        if missing_gfx:
            return f"{variant} lacks {', '.join(missing_gfx)}", unknown
        return None, unknown
    return None, ()


def _sm_list(gpus: Sequence[Gpu]) -> str:
    from envsetup.matrices import arch_name

    names: list[str] = []
    for gpu in gpus:
        sm = arch_name(gpu.compute_capability or "")
        if sm not in names:
            names.append(sm)
    return " and ".join(names)


# --- rule 3 + the choice of variant


def _choose_variant(context: _Context, release: Release) -> tuple[_Choice | None, tuple[str, ...]]:
    """The best variant of `release` for this machine, or None + why each was rejected."""
    version = str(release.version)
    offered = [parse_variant(name) for name in _variants(release, context.platform)]
    candidates = [variant for variant in offered if _wanted(context, variant)]
    if not candidates:
        names = ", ".join(v.name for v in offered) or "none"
        wanted = context.forced.name if context.forced else context.target
        return None, (f"torch {version} has no {wanted} build for {context.platform} ({names})",)
    rejected = [
        f"{variant} has no wheel for Python {context.python}"
        for variant in candidates
        if not release.has_wheel(context.python, context.platform, variant.name)
    ]
    candidates = [
        v for v in candidates if release.has_wheel(context.python, context.platform, v.name)
    ]
    passing: list[tuple[Variant, tuple[str, ...]]] = []
    for variant in candidates:
        verdict = _driver_verdict(context, variant) if variant.kind == "cuda" else None
        notes: tuple[str, ...] = ()
        if verdict is None:
            verdict, notes = _gpu_verdict(context, version, variant)
        if verdict is None:
            passing.append((variant, notes))
        else:
            rejected.append(verdict)
    if not passing:
        return None, tuple(rejected)
    confirmed = [item for item in passing if not _inferred(context, version, item[0])]
    variant = _best(context, [item[0] for item in confirmed or passing])
    choice = _explain(context, version, variant, dict(passing)[variant])
    set_aside = [str(item[0]) for item in passing if confirmed and item not in confirmed]
    if set_aside and any(v > variant for v in (parse_variant(n) for n in set_aside)):
        choice = replace(
            choice,
            reasons=(
                *choice.reasons,
                f"{', '.join(set_aside)} also fit{'s' if len(set_aside) == 1 else ''} but only "
                f"by an inferred arch list; {variant}'s list is confirmed",
            ),
        )
    if rejected:
        ruled_out = f"ruled out for torch {version}: " + "; ".join(rejected)
        choice = replace(choice, reasons=(*choice.reasons, ruled_out))
    return choice, tuple(rejected)


def _inferred(context: _Context, version: str, variant: Variant) -> tuple[str, ...]:
    """The GPU-code facts a choice of `variant` would rest on that no primary source confirms:
    an arch list marked `confirmed = false`, or none recorded, for GPUs whose arch is known."""
    if variant.kind == "cuda":
        if not any(gpu.compute_capability for gpu in context.nvidia):
            return ()
        archs = context.matrices.arch_list(version, variant.name, context.platform)
        if archs is None:
            return (f"the GPU architectures of torch {version} {variant} are not recorded",)
        if not archs.confirmed:
            return (
                f"the {variant} arch list of torch {version} on {context.platform} is inferred "
                f"({archs.notes or archs.source})",
            )
    elif variant.kind == "rocm" and any(gpu.arch for gpu in context.amd):
        row = context.matrices.rocm_row(variant.name)
        if row is None or not row.gfx:
            return (f"the gfx targets of {variant} are not recorded",)
        if not row.confirmed:
            return (f"the gfx targets of {variant} are inferred ({row.notes or row.source})",)
    return ()


def _wanted(context: _Context, variant: Variant) -> bool:
    if context.forced is not None:
        return variant == context.forced
    return variant.kind == context.target


def _best(context: _Context, variants: list[Variant]) -> Variant:
    """Prefer the driver's own CUDA major, then the newest ≤ its maximum, then the nearest newer."""
    if context.target == "rocm":
        # A ROCm build whose gfx list is recorded and covers the GPUs beats an unrecorded one.
        known = context.matrices.rocm_targets
        return max(variants, key=lambda v: (known(v.name) is not None, v.version))
    if context.target != "cuda" or context.max_cuda is None:
        return max(variants, key=lambda v: v.version)
    limit = version_tuple(context.max_cuda)[:2]

    def key(variant: Variant) -> tuple[bool, bool, tuple[int, ...]]:
        own_major = variant.version[0] == limit[0]
        within = tuple(variant.version) <= limit
        closeness = variant.version if within else tuple(-part for part in variant.version)
        return own_major, within, closeness

    return max(variants, key=key)


def _explain(context: _Context, version: str, variant: Variant, notes: tuple[str, ...]) -> _Choice:
    reasons: list[str] = []
    warnings: list[str] = list(notes)
    minor_compat = False
    covered = [gpu for gpu in context.nvidia if gpu.compute_capability]
    wheels_have = f" whose wheels include {_sm_list(covered)}" if covered else ""
    if variant.kind == "cuda":
        limit = context.max_cuda
        native = (
            limit is None or version_tuple(variant.cuda or "0.0")[:2] <= version_tuple(limit)[:2]
        )
        if context.forced is not None:
            include = f" and include {_sm_list(covered)}" if covered else ""
            reasons.append(
                f"{variant} as asked: its torch {version} wheels fit the driver{include}"
            )
        elif limit is None:
            reasons.append(f"{variant} is the newest torch {version} CUDA variant{wheels_have}")
        elif native:
            reasons.append(
                f"{variant} is the newest torch {version} variant ≤ {limit}{wheels_have}"
            )
        else:
            reasons.append(
                f"no torch {version} variant ≤ {limit}{wheels_have} fits; {variant} is "
                f"the nearest newer CUDA {variant.cuda_major}.x build"
            )
        floor = driver_floor(context.matrices, variant, context.os)
        if not native:
            minor_compat = True
            warnings.append(
                f"{variant} is newer than the driver's CUDA {limit}: it relies on CUDA "
                f"{variant.cuda_major}.x minor-version compatibility (driver ≥ {floor}); PTX JIT "
                "and run-time compilation (torch.compile/Triton) can need a newer driver; "
                "--policy strict avoids this"
            )
        if context.driver is None and limit is None:
            warnings.append(
                f"the NVIDIA driver version is unknown: {variant} needs driver ≥ {floor} "
                f"on {context.os}; pass --driver to check"
            )
    elif variant.kind == "rocm":
        gfx = sorted({gpu.arch for gpu in context.amd if gpu.arch})
        covers = f" and covers {', '.join(gfx)}" if gfx else ""
        reasons.append(f"{variant} is the newest torch {version} ROCm variant{covers}")
    elif variant.kind == "xpu":
        reasons.append(f"Intel GPU: the xpu build of torch {version}")
    archs = context.matrices.arch_list(version, variant.name, context.platform)
    if archs is not None and not archs.confirmed and covered:
        warnings.append(
            f"the GPU architectures of torch {version} {variant} on {context.platform} are "
            "inferred, not confirmed by a primary source; `envsetup verify` checks them"
        )
    inferred = _inferred(context, version, variant)
    return _Choice(variant, tuple(reasons), tuple(warnings), minor_compat, inferred)


def _stable_plan(
    context: _Context,
    spec: SpecifierSet | None,
    companions: dict[str, SpecifierSet | None],
    *,
    fallback: bool = True,
) -> Plan:
    """Rule 4: the newest matching release with a fitting build; unpinned GPU misses → CPU."""
    pinned = spec is not None
    releases = [r for r in reversed(context.matrices.releases) if _matches(spec, r)]
    forced = context.forced
    if not releases:
        known = ", ".join(str(r.version) for r in context.matrices.releases[-3:])
        raise NoCompatibleBuild(
            f"no torch release matches {spec}; the matrices know releases up to {known}",
            hint="run `envsetup matrix` to list them, or `envsetup matrix update` to refresh",
        )
    skipped: list[str] = []
    unconfirmed: list[str] = []
    #: the newest fit that rests on an inferred arch list: planned only when no older release
    #: fits by confirmed facts (an inferred list never outranks a confirmed build)
    provisional: Plan | None = None
    set_aside: list[str] = []
    for release in releases:
        if forced is not None and forced.name not in _variants(release, context.platform):
            continue  # a forced backend: releases without it are not worth a line each
        if not release.confirmed and not pinned:
            unconfirmed.append(str(release.version))
            continue
        found = _try_release(context, release, companions)
        if isinstance(found, _Choice) and found.inferred:
            if provisional is None:
                provisional = _build_plan(context, release, found, companions, skipped)
                provisional = replace(
                    provisional,
                    warnings=(
                        *provisional.warnings,
                        "no release fits by confirmed arch lists alone: this plan rests on "
                        + "; ".join(found.inferred),
                    ),
                )
            set_aside.append(f"{release.version} {found.variant}")
            continue
        if isinstance(found, _Choice):
            plan = _build_plan(context, release, found, companions, skipped)
            if set_aside:
                plan = replace(
                    plan,
                    reasons=(
                        *plan.reasons[:-1],  # before the closing "rests on" line
                        "not planned although newer: torch "
                        + ", ".join(set_aside)
                        + f" fit{'s' if len(set_aside) == 1 else ''} only by an inferred arch "
                        f"list; torch {release.version} {found.variant}'s list is confirmed",
                        plan.reasons[-1],
                    ),
                )
            if unconfirmed:
                at = len(context.reasons)
                note = (
                    f"newer torch {', '.join(unconfirmed)} not planned: the matrices cannot "
                    f"confirm its wheels yet (--torch {unconfirmed[0]} plans it anyway)"
                )
                plan = replace(plan, reasons=(*plan.reasons[:at], note, *plan.reasons[at:]))
            if found.minor_compat:
                plan = replace(
                    plan, alternatives=(*plan.alternatives, _strict(context, spec, companions))
                )
            return plan
        skipped.append(f"torch {release.version}: " + "; ".join(found))
    if provisional is not None:
        return provisional
    if fallback and not pinned and context.target != "cpu" and context.forced is None:
        return _cpu_fallback(context, spec, companions, skipped)
    if not skipped and forced is not None:
        raise NoCompatibleBuild(
            f"no {_torch(spec)} release has a {forced} build for {context.platform}",
            hint="run `envsetup matrix --variant " + forced.name + "` to see what exists",
        )
    raise NoCompatibleBuild(
        _failure_message(context, spec, skipped),
        hint=_suggest(context, spec, companions, skipped),
    )


def _cpu_fallback(
    context: _Context,
    spec: SpecifierSet | None,
    companions: dict[str, SpecifierSet | None],
    skipped: list[str],
) -> Plan:
    """No GPU build of any release fits: plan the CPU build, loudly, with the way out."""
    kind = KIND_LABELS[context.target]
    cpu_context = replace(
        context,
        target="cpu",
        reasons=[*context.reasons, f"no {kind} build of any torch release fits: CPU build"],
        warnings=[
            *context.warnings,
            "this machine has a GPU but gets the CPU build; newest misses: "
            + " / ".join(skipped[:2]),
        ],
    )
    plan = _stable_plan(cpu_context, spec, companions, fallback=False)
    upgrade = _driver_upgrade(context, spec)
    if upgrade is None:
        return plan
    return replace(plan, alternatives=(upgrade, *plan.alternatives))


def _candidates(context: _Context, spec: SpecifierSet | None) -> list[Release]:
    """Releases matching `spec`, newest first; unconfirmed ones only when pinned."""
    pinned = spec is not None
    return [
        release
        for release in reversed(context.matrices.releases)
        if _matches(spec, release) and (release.confirmed or pinned)
    ]


def _matches(spec: SpecifierSet | None, release: Release) -> bool:
    return spec is None or spec.contains(str(release.version), prereleases=True)


def _torch(spec: SpecifierSet | None) -> str:
    """`torch>=2.4` for a pinned request, `torch` for an unpinned one (messages and pins)."""
    return "torch" if spec is None else f"torch{spec}"


def _try_release(
    context: _Context, release: Release, companions: dict[str, SpecifierSet | None]
) -> _Choice | list[str]:
    """The choice for one release, or every reason it fails (rules 3, 5, then 1 and 2)."""
    version = str(release.version)
    pythons = release.pythons(context.platform)
    if context.python not in pythons:
        shown = ", ".join(pythons) or "none"
        return [f"no wheel for Python {context.python} on {context.platform} (has {shown})"]
    problems = []
    for name, wanted in companions.items():
        paired = _companion(release, name)
        family = _family_package(name)
        refusal = None if family is None else family.refusal(release.version, context.platform)
        if refusal is not None:
            problems.append(refusal)
        elif paired is None:
            problems.append(f"{name} has no release paired with torch {version}")
        elif (
            family is not None
            and context.request.policy == "strict"
            and not _family_confirmed(name, release)
        ):
            problems.append(
                f"{name} {paired} pairs with torch {version} only by its documented table, "
                "not by its wheel's metadata (--policy strict)"
            )
        elif wanted is not None and not wanted.contains(paired, prereleases=True):
            problems.append(f"{name} {paired} (paired with torch {version}) is not {wanted}")
    if problems:
        return problems
    choice, rejected = _choose_variant(context, release)
    if choice is None:
        return list(rejected)
    return choice


def _failure_message(context: _Context, spec: SpecifierSet | None, skipped: list[str]) -> str:
    what = _torch(spec)
    machine = f"{context.platform}, Python {context.python}"
    if context.driver:
        machine += f", driver {context.driver}"
    gpus = [gpu for gpu in context.nvidia if gpu.compute_capability]
    if gpus:
        machine += f", {_sm_list(gpus)}"
    shown = skipped[:4] + ([f"… and {len(skipped) - 4} older releases"] if len(skipped) > 4 else [])
    return f"no {what} build fits this machine ({machine}):\n  " + "\n  ".join(shown)


def _suggest(
    context: _Context,
    spec: SpecifierSet | None,
    companions: dict[str, SpecifierSet | None],
    skipped: list[str],
) -> str:
    """What would work instead: an older torch, a driver upgrade, CPU, fewer companions."""
    ideas: list[str] = []
    if spec is not None:
        try:
            other = _stable_plan(context, None, companions, fallback=False)
        except NoCompatibleBuild:
            pass
        else:
            ideas.append(f"torch {other.torch} ({other.variant}) works here: --torch {other.torch}")
    upgrade = _driver_upgrade(context, spec)
    if upgrade:
        ideas.append(upgrade)
    blocking = [name for name in companions if any(name in line for line in skipped)]
    if blocking:
        ideas.append("drop --with " + ",".join(blocking) + " to free the torch version")
    if context.target != "cpu":
        ideas.append("--backend cpu installs the CPU build")
    return "; ".join(ideas) or "run `envsetup matrix` to see what exists"


def _driver_upgrade(context: _Context, spec: SpecifierSet | None) -> str | None:
    """'upgrade the driver to ≥ N' when only the driver stands between the GPUs and a build."""
    if context.target != "cuda" or context.driver is None:
        return None
    strict = context.request.policy == "strict"
    for release in _candidates(context, spec):
        if context.python not in release.pythons(context.platform):
            continue
        floors = []
        for name in _variants(release, context.platform):
            variant = parse_variant(name)
            if not _wanted(context, variant):
                continue
            if _gpu_verdict(context, str(release.version), variant)[0] is not None:
                continue
            if strict:
                floor = context.matrices.toolkit_driver(variant.cuda or "", context.os)
            else:
                floor = driver_floor(context.matrices, variant, context.os)
            if floor is not None:
                floors.append((version_tuple(floor, 3), floor, variant))
        if floors:
            _, floor, variant = min(floors)
            return f"upgrade the driver to ≥ {floor} for torch {release.version} ({variant})"
    return None


def _channel_plan(
    context: _Context, spec: SpecifierSet | None, companions: dict[str, SpecifierSet | None]
) -> Plan:
    """Nightly/test builds are not in the matrices: pick the variant the newest release would."""
    channel = context.request.channel
    newest = context.matrices.releases[-1]
    found = _try_release(context, newest, {})
    # The variant's own warnings (minor-version compatibility, an inferred arch list) hold for the
    # channel's builds of it too.
    variant_warnings: tuple[str, ...] = ()
    if isinstance(found, _Choice):
        variant = found.variant
        reasons = list(found.reasons)
        variant_warnings = found.warnings
    elif context.forced is not None:
        variant, reasons = context.forced, []
    else:
        variant, reasons = Variant("cpu"), [f"no GPU build of torch {newest.version} fits"]
    pins = [_torch(spec)]
    pins += [f"{name}{wanted}" if wanted else name for name, wanted in companions.items()]
    index = f"{context.base}/{channel}/{variant}"
    return Plan(
        torch=ChannelPin(channel, "" if spec is None else str(spec)),
        variant=variant.name,
        index_url=index,
        find_links=None if context.links is None else f"{context.links}/{channel}/{variant}",
        packages=tuple(pins),
        platform=context.platform,
        python=context.python,
        policy=context.request.policy,
        channel=channel,
        pre=True,
        reasons=(
            *context.reasons,
            *reasons,
            f"{channel} channel: {index} with --pre",
        ),
        warnings=(
            *context.warnings,
            *variant_warnings,
            f"the {channel} channel is not in envsetup's matrices: the variant {variant} is "
            f"chosen as for torch {newest.version} and is unverified for {channel} builds",
        ),
    )


def _build_plan(
    context: _Context,
    release: Release,
    choice: _Choice,
    companions: dict[str, SpecifierSet | None],
    skipped: list[str],
) -> Plan:
    version = str(release.version)
    variant = choice.variant
    pypi = _served_by_pypi(context, release, variant)
    reasons = [*context.reasons]
    warnings = [*context.warnings, *choice.warnings, *_unconfirmed(context, release)]
    if skipped:
        reasons.append("newer releases do not fit: " + " / ".join(skipped[:2]))
    reasons += choice.reasons
    companions = dict(companions)
    for name, have in context.installed.items():
        if _companion(release, name) is None:
            warnings.append(
                f"{name} {have} is installed but has no release for torch {version}: it will "
                f"stop working (uninstall it, or --with {name} to keep a torch it pairs with)"
            )
        else:
            companions[name] = None
            reasons.append(f"{name} {have} is installed in the target environment: re-pinned")
    tag = f"+{variant}"
    if pypi:
        tag = ""
    elif context.platform == "linux-aarch64":
        # Older aarch64 wheels on the index carry no local tag (2.5.1 in cu124 is plain
        # "2.5.1"); a pin without it matches either, and --index-url still picks the build.
        tag = ""
        reasons.append("aarch64 pins leave out the +variant tag; the index selects the build")
    packages = [f"torch=={version}{tag}"]
    for name in companions:
        paired = _companion(release, name)
        family = _family_package(name)
        if family is None:
            packages.append(f"{name}=={paired}{tag}")
            reasons.append(f"{name} {paired} is the release paired with torch {version}")
            continue
        # Family wheels carry their own local labels (or none): the public version pins the
        # release and the index the plan routes it through picks the build.
        pair = family.pair(release.version)
        assert pair is not None  # _try_release refused the release otherwise
        packages.append(f"{name}=={pair.version}")
        reasons.append(
            f"{name} {pair.version} is the release built for torch {version} ({pair.evidence})"
        )
        if not pair.confirmed:
            warnings.append(
                f"{name} {pair.version} pairs with torch {pair.torch_text} by {name}'s documented "
                f"table ({pair.evidence}); its wheel does not pin torch, so this is unconfirmed"
            )
    if pypi:
        index_url = None
        find_links = None
        reasons.append(f"PyPI serves the {variant} build for {context.platform}")
    else:
        index_url = f"{context.base}/{variant}"
        find_links = None if context.links is None else f"{context.links}/{variant}"
        every = "every package" if companions else "torch"
        reasons.append(f"{every} from {find_links or index_url} (never an extra index)")
    facts = _facts(context, release, variant)
    reasons.append(
        "rests on "
        + "; ".join(f"{f.fact} ({'confirmed' if f.confirmed else 'inferred'})" for f in facts)
    )
    return Plan(
        torch=version,
        variant=variant.name,
        index_url=index_url,
        find_links=find_links,
        packages=tuple(packages),
        platform=context.platform,
        python=context.python,
        policy=context.request.policy,
        reasons=tuple(reasons),
        warnings=tuple(warnings),
        alternatives=tuple(_alternatives(context, release, variant)),
        facts=facts,
    )


def _facts(context: _Context, release: Release, variant: Variant) -> tuple[Fact, ...]:
    """The matrices rows the plan rests on, each marked confirmed or inferred (JSON "facts")."""
    version = str(release.version)
    relevant = {"variants", f"variants.{context.platform}", "python"}
    doubtful = [name for name in release.unconfirmed if name in relevant]
    facts = [
        Fact(
            f"torch {version} wheels for {context.platform}",
            ", ".join(_variants(release, context.platform)),
            release.sources[0] if release.sources else "matrices/torch.toml",
            release.confirmed and not doubtful,
        )
    ]
    if variant.kind == "cuda":
        archs = context.matrices.arch_list(version, variant.name, context.platform)
        if archs is not None:
            facts.append(
                Fact(
                    f"arch list of torch {version} {variant} on {context.platform}",
                    " ".join(archs.get_arch_list()),
                    archs.source,
                    archs.confirmed,
                )
            )
        major = variant.cuda_major
        compat = next((r for r in context.matrices.minor_compat if r.cuda_major == major), None)
        toolkit = context.matrices.toolkit(variant.cuda or "")
        row = compat if compat is not None and compat.driver(context.os) else toolkit
        if row is not None:
            facts.append(
                Fact(
                    f"minimum driver for {variant} on {context.os}",
                    row.driver(context.os) or "unknown",
                    row.source,
                    row.confirmed,
                )
            )
    elif variant.kind == "rocm":
        rocm = context.matrices.rocm_row(variant.name)
        if rocm is not None:
            facts.append(
                Fact(
                    f"gfx targets of {variant}",
                    " ".join(rocm.gfx) or "not recorded",
                    rocm.source,
                    rocm.confirmed and bool(rocm.gfx),
                )
            )
    return tuple(facts)


def _strict(
    context: _Context, spec: SpecifierSet | None, companions: dict[str, SpecifierSet | None]
) -> str:
    """The alternative to a minor-version-compat choice: what --policy strict would pick."""
    strict = replace(context, request=replace(context.request, policy="strict"))
    try:
        plan = _stable_plan(strict, spec, companions, fallback=False)
    except NoCompatibleBuild:
        return "--policy strict: no build ≤ the driver's CUDA fits; upgrade the driver instead"
    return f"--policy strict: torch {plan.torch} {plan.variant} (no minor-version compatibility)"


def _unconfirmed(context: _Context, release: Release) -> list[str]:
    """Warnings for facts of the chosen release that no primary source confirms."""
    if not release.confirmed:
        return [
            f"torch {release.version}: the matrices cannot confirm its wheels, Pythons or "
            "companions yet; `envsetup verify` after installing"
        ]
    relevant = {"variants", f"variants.{context.platform}", "python"}
    if context.python in release.python_platforms:
        relevant.add("python_platforms")
    fields = [name for name in release.unconfirmed if name in relevant]
    if not fields:
        return []
    return [
        f"torch {release.version}: {', '.join(fields)} not confirmed by a primary source "
        f"(envsetup's torch.toml data; `envsetup matrix --torch {release.version}` shows it)"
    ]


def _alternatives(context: _Context, release: Release, chosen: Variant) -> list[str]:
    version = str(release.version)
    others: list[str] = []
    for name in _variants(release, context.platform):
        variant = parse_variant(name)
        if variant == chosen or variant.kind != chosen.kind:
            continue
        if variant.kind == "cuda" and _driver_verdict(context, variant) is not None:
            continue
        if _gpu_verdict(context, version, variant)[0] is None:
            inferred = " (arch list inferred)" if _inferred(context, version, variant) else ""
            others.append(f"torch {version} {variant}{inferred}: --backend {variant}")
    if chosen.kind != "cpu" and "cpu" in _variants(release, context.platform):
        others.append(f"torch {version} CPU build: --backend cpu")
    return others


def _with_installed(plan: Plan, installed: dict[str, str], matrices: Matrices) -> Plan:
    """Say what the plan replaces when the target environment has a different build."""
    release = None if plan.release is None else matrices.release(plan.release)
    default = None if release is None else release.pypi_default.get(plan.platform)
    differing = []
    same = []
    upgraded = []
    for pin in plan.packages:
        name, _, wanted = pin.partition("==")
        have = installed.get(name)
        if have is None:
            continue
        if wanted and _same_build(plan, Version(have), Version(wanted), default):
            same.append(f"{name} {have}")
        elif wanted and name == "torch" and _same_variant(plan, Version(have), matrices):
            upgraded.append(f"{name}=={have}")
        elif wanted and upgraded and Version(have).local == Version(installed["torch"]).local:
            upgraded.append(f"{name}=={have}")  # a companion built like torch follows it
        else:
            differing.append(f"{name}=={have}")
    reasons = list(plan.reasons)
    if same:
        reasons.append("already installed: " + ", ".join(same))
    if upgraded:
        # The installer moves between versions of one build on its own; forcing a reinstall
        # would reinstall every dependency too.
        reasons.append(
            "upgrades " + ", ".join(upgraded) + " installed in the target environment "
            "(the same build: a plain upgrade, no forced reinstall)"
        )
    upgrades = ", ".join(upgraded) or None
    if not differing:
        return replace(plan, upgrades=upgrades, reasons=tuple(reasons))
    reasons.append(
        "replaces " + ", ".join(differing) + " installed in the target environment "
        "(a different build; the commands force the reinstall)"
    )
    return replace(plan, replaces=", ".join(differing), upgrades=upgrades, reasons=tuple(reasons))


def _same_build(plan: Plan, have: Version, wanted: Version, pypi_default: str | None) -> bool:
    """An untagged installed version is PyPI's build: the platform's default variant."""
    if have.public != wanted.public:
        return False
    if plan.index_url is None and plan.find_links is None:
        return have.local is None
    return (have.local or pypi_default) == plan.variant


def _same_variant(plan: Plan, have: Version, matrices: Matrices) -> bool:
    """Whether an installed torch at another version is the plan's variant (2.13.0+cpu and
    2.14.0+cpu); an untagged one is its own release's PyPI default."""
    if plan.channel != "stable":
        return False
    if plan.index_url is None and plan.find_links is None:
        return have.local is None
    release = matrices.release(have.public) if have.local is None else None
    label = have.local or (release.pypi_default.get(plan.platform) if release else None)
    return label == plan.variant


# --------------------------------------------------------------------------- matrices access


def _variants(release: Release, platform: str) -> tuple[str, ...]:
    return tuple(release.variants.get(platform, ()))


def _companion(release: Release, name: str) -> str | None:
    if name == "torchvision":
        return release.torchvision
    if name == "torchaudio":
        return release.torchaudio
    family = _family_package(name)
    pair = None if family is None else family.pair(release.version)
    return None if pair is None else pair.version


def _family_package(name: str) -> FamilyPackage | None:
    """The family.toml row of a `--with` name beyond torchvision/torchaudio (read lazily)."""
    if name in COMPANIONS:
        return None
    from envsetup.matrices.family import load_family

    return load_family().get(name)


def _family_confirmed(name: str, release: Release) -> bool:
    family = _family_package(name)
    pair = None if family is None else family.pair(release.version)
    return pair is not None and pair.confirmed


def _served_by_pypi(context: _Context, release: Release, variant: Variant) -> bool:
    """macOS wheels and Windows CPU wheels come from PyPI; Linux always uses the index."""
    if context.os == "linux":
        return False
    return release.pypi_default.get(context.platform) == variant.name
