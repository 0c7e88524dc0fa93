"""tox 4 plugin: install the right torch build into an environment before its other deps.

Per-environment settings (tox.ini `[testenv]` or tox.toml `[env_run_base]`/`[env.NAME]`):

- `torch`: a version or specifier ("2.5.1", "2.5", ">=2.4,<2.6");
- `torch_backend`: auto | cpu | cuXYZ | rocmX.Y | xpu;
- `torch_with`: companions (torchvision, torchaudio), pinned to the paired versions;
- `install_envsetup` (default true): after torch, install this same envsetup (the checkout, wheel
  or git URL tox's copy came from) so its pytest plugin (`gpu` marker, `device` fixture) is in
  the environment. No registry publishes envsetup, so `deps` has no portable way to name it.

Unset, they come from the environment's name: `py311-torch25-cu121` means torch ==2.5.*, backend
cu121; `torch2.5.1` an exact release. An environment without `torch` (setting or torchNN factor)
is left alone, so installing envsetup never changes other projects' tox runs. Torch-family
packages are installed through `--index-url` of the planned variant (never an extra index,
and without inherited settings that add package sources) with the environment's own installer —
tox's pip, or uv under tox-uv — and torch-family names found in `deps` join the plan, so PyPI
never supplies a mismatched torchvision.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import pluggy
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from envsetup.model.plan import TORCH_FAMILY

if TYPE_CHECKING:
    from tox.config.sets import EnvConfigSet
    from tox.execute.api import Execute
    from tox.session.state import State
    from tox.tox_env.api import ToxEnv

__all__ = [
    "TorchSettings",
    "companions_in",
    "settings_from_factors",
    "tox_add_env_config",
    "tox_on_install",
]


def __dir__() -> list[str]:
    return __all__


#: tox's own marker (`tox.plugin.impl` is this object); made here so importing the module
#: does not import tox.
impl = pluggy.HookimplMarker("tox")

_TORCH_FACTOR = re.compile(r"torch(?:(\d)(\d*)|(\d+(?:\.\d+){1,2}))")

#: The install steps of a run environment; torch goes in before the first one that happens.
_INSTALL_STEPS = ("deps", "dependency-groups", "package_deps", "pylock")


@dataclass(frozen=True)
class TorchSettings:
    """What one tox environment asks of envsetup."""

    torch: str = ""
    backend: str = ""
    with_: tuple[str, ...] = ()
    install_envsetup: bool = True

    @property
    def active(self) -> bool:
        """Only `torch` switches the plugin on: a bare `cpu` factor may mean something else in a
        project that never asked envsetup for torch."""
        return bool(self.torch)


def settings_from_factors(env_name: str) -> TorchSettings:
    """`py311-torch25-cu121` → torch "2.5" (==2.5.*), backend "cu121"; other factors ignored."""
    from envsetup.matrices import VARIANT_RE  # the variant names the indexes use

    torch = backend = ""
    for factor in env_name.split("-"):
        match = _TORCH_FACTOR.fullmatch(factor)
        if match:
            major, minor, dotted = match.groups()
            torch = dotted or (f"{major}.{minor}" if minor else f"{major}.*")
        elif VARIANT_RE.fullmatch(factor):
            backend = factor
    return TorchSettings(torch=f"=={torch}" if torch.endswith("*") else torch, backend=backend)


def companions_in(requirements: Iterable[str]) -> tuple[str, ...]:
    """The torch companions named in a deps list (torch itself is the plan's anyway)."""
    found: list[str] = []
    for line in requirements:
        try:
            name = canonicalize_name(Requirement(line.strip()).name)
        except InvalidRequirement:
            continue  # options (-r, -c, --index-url) and paths are not requirements
        if name in TORCH_FAMILY and name != "torch" and name not in found:
            found.append(name)
    return tuple(found)


@impl
def tox_add_env_config(env_conf: EnvConfigSet, state: State) -> None:
    """Declare `torch`, `torch_backend` and `torch_with`, defaulting from the env name."""

    def from_factors(attribute: str) -> Any:
        def default(conf: object, env_name: str | None) -> str:
            return str(getattr(settings_from_factors(env_name or ""), attribute))

        return default

    env_conf.add_config(
        keys=["torch"],
        of_type=str,
        default=from_factors("torch"),
        desc="torch version or specifier envsetup installs first (default: the torchNN factor)",
    )
    env_conf.add_config(
        keys=["torch_backend"],
        of_type=str,
        default=from_factors("backend"),
        desc="torch build: auto, cpu, cuXYZ, rocmX.Y, xpu (default: the cpu/cuXYZ/... factor)",
    )
    env_conf.add_config(
        keys=["torch_with"],
        of_type=list[str],
        default=[],
        desc="torch companions installed with it from the same index (torchvision, torchaudio)",
    )
    env_conf.add_config(
        keys=["install_envsetup"],
        of_type=bool,
        default=True,
        desc="install this envsetup (its pytest plugin) into an environment that has `torch`",
    )


def _settings(tox_env: ToxEnv) -> TorchSettings:
    conf = tox_env.conf
    return TorchSettings(
        torch=str(conf["torch"]).strip(),
        backend=str(conf["torch_backend"]).strip(),
        with_=tuple(str(item) for item in conf["torch_with"]),
        install_envsetup=bool(conf["install_envsetup"]),
    )


def _deps_requirements(tox_env: ToxEnv) -> list[str]:
    try:
        _, requirements = tox_env.conf["deps"].unroll()
    except (KeyError, AttributeError, ValueError):
        return []
    return [str(item) for item in requirements]


@impl
def tox_on_install(tox_env: ToxEnv, arguments: Any, section: str, of_type: str) -> None:
    """Before the environment's first install step, install the planned torch build, then
    (unless `install_envsetup = false`) this envsetup."""
    if of_type not in _INSTALL_STEPS:
        return
    settings = _settings(tox_env)
    if not settings.active:
        return
    _install_torch(tox_env, settings)
    if settings.install_envsetup:
        _install_envsetup(tox_env)


def _install_torch(tox_env: ToxEnv, settings: TorchSettings) -> None:
    from tox.execute.request import StdinSource
    from tox.tox_env.errors import Fail
    from tox.tox_env.python.api import Python
    from tox.tox_env.python.pip.pip_install import Pip

    from envsetup.errors import EnvsetupError
    from envsetup.install.argv import install_options
    from envsetup.install.isolation import announce, isolate
    from envsetup.integrations.env_plan import plan_for_python
    from envsetup.redact import redact

    installer = tox_env.installer
    if not isinstance(tox_env, Python) or not isinstance(installer, Pip):
        raise Fail(
            f"envsetup: {tox_env.name} uses {type(installer).__name__}, which cannot install "
            "from a wheel index; torch/torch_backend need a virtualenv or tox-uv environment"
        )
    info = tox_env.base_python
    python = f"{info.version_info.major}.{info.version_info.minor}"
    python += "t" if info.free_threaded else ""
    with_ = tuple(dict.fromkeys(settings.with_ + companions_in(_deps_requirements(tox_env))))
    try:
        plan = plan_for_python(
            python, torch=settings.torch or None, backend=settings.backend or "auto", with_=with_
        )
    except EnvsetupError as error:
        raise Fail(f"envsetup: {tox_env.name}: {error}") from None
    kind = "uv" if tox_env.id().startswith("uv") else "pip"
    args = install_options(plan, installer=kind)
    # Cached like tox's own deps: a changed plan (setting, index, machine) installs again.
    with tox_env.cache.compare({"args": args}, "envsetup", "torch") as (unchanged, _):
        if unchanged:
            return
        logging.warning("envsetup: %s from %s", " ".join(plan.packages), redact(plan.source))
        for reason in plan.reasons:
            logging.info("envsetup: %s", reason)
        announce(isolate(tox_env.environment_variables), logging.warning)
        command = installer.build_install_cmd(args)
        executor = cast("Execute", _WithoutRoutingVariables(tox_env.executor))
        outcome = tox_env.execute(
            command, stdin=StdinSource.OFF, run_id="install_torch", executor=executor
        )
        outcome.assert_success()


def _install_envsetup(tox_env: ToxEnv) -> None:
    """The same envsetup as tox's, through the environment's installer and its usual package
    sources (envsetup is not torch-family: PyPI may supply its `packaging`)."""
    from tox.execute.request import StdinSource
    from tox.tox_env.errors import Fail

    from envsetup.errors import EnvsetupError
    from envsetup.integrations.distribution import requirement

    try:
        wanted = requirement()
    except EnvsetupError as error:
        raise Fail(f"envsetup: {tox_env.name}: {error}") from None
    # Cached as tox caches deps: the same requirement is not installed again (`tox -r` does).
    with tox_env.cache.compare({"requirement": wanted}, "envsetup", "self") as (unchanged, _):
        if unchanged:
            return
        logging.warning("envsetup: %s (install_envsetup = false to leave it out)", wanted)
        command = tox_env.installer.build_install_cmd([wanted])  # type: ignore[attr-defined]
        outcome = tox_env.execute(command, stdin=StdinSource.OFF, run_id="install_envsetup")
        outcome.assert_success()


class _WithoutRoutingVariables:
    """tox's executor, running the torch install without inherited package sources (as
    `envsetup install` does): tox has no per-command environment, and editing the environment's
    cached variables would change its later commands too."""

    def __init__(self, executor: Any) -> None:
        self._executor = executor

    @contextlib.contextmanager
    def call(self, request: Any, show: bool, out_err: Any, env: Any) -> Iterator[Any]:
        from envsetup.install.isolation import isolate

        request.env = isolate(request.env).environ
        with self._executor.call(request, show, out_err, env) as status:
            yield status
