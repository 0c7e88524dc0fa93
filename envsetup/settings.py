"""Every environment variable envsetup reads, declared once: name, value form, meaning, reader.

Modules read variables through `get` / `flag`, which refuse an undeclared name, so a new
variable cannot be read without being declared here; the table in docs/cli.md is generated from
this declaration (`python -m envsetup.settings --markdown`) and a test keeps the two equal.
The parsing of a value stays with the stage that understands it (a CUDA version is parsed by
detect's overrides); `value` says, for users, which form that parser accepts. Stdlib only: the
CLI imports this at start-up.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

__all__ = ["SETTINGS", "Setting", "flag", "get", "markdown", "setting"]

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (~2 ms of start-up)
if TYPE_CHECKING:
    from typing import Literal

    #: How a value is parsed: free text; a flag (1/true); a path; a URL; one of a few words; a
    #: comma-separated list; a positive integer; a fact detect's overrides parse (variant,
    #: driver version, CUDA version, compute capabilities, gfx targets); CUDA's device list.
    Parser = Literal[
        "text", "flag", "path", "url", "choice", "list", "integer", "override", "visibility"
    ]


class Setting:
    """One environment variable: what it holds, what it means, who reads it. (A plain class: a
    dataclass would make the CLI import `dataclasses` before it needs it, ~4 ms.)"""

    __slots__ = ("meaning", "name", "parser", "read_by", "value")

    def __init__(self, name: str, parser: Parser, value: str, meaning: str, read_by: str) -> None:
        self.name, self.parser, self.value = name, parser, value
        self.meaning, self.read_by = meaning, read_by

    def __repr__(self) -> str:
        return f"Setting({self.name!r})"


_OVERRIDE_READERS = "detect (every verb that looks at the machine), the pytest plugin"
_NOXFILE = "envsetup's own noxfile (`nox -s verify` cells)"

SETTINGS: tuple[Setting, ...] = (
    # Overrides: what the machine is; ours first, then the other tools' spelling (docs: Overrides).
    Setting(
        "ENVSETUP_BACKEND",
        "override",
        "`cpu`, `xpu`, `cu121` / `cu12.1` / `cuda12.1`, `rocm6.2` / `rocm6.2.4`",
        "the build to install, over any probe; `xpu` also opts integrated Intel graphics in",
        _OVERRIDE_READERS,
    ),
    Setting(
        "UV_TORCH_BACKEND",
        "override",
        "as `ENVSETUP_BACKEND`; `auto` = detect",
        "uv's spelling of `ENVSETUP_BACKEND`, read when that is unset",
        _OVERRIDE_READERS,
    ),
    Setting(
        "LTT_PYTORCH_COMPUTATION_BACKEND",
        "override",
        "as `ENVSETUP_BACKEND`; the first entry of a list",
        "light-the-torch's spelling, read when the two above are unset",
        _OVERRIDE_READERS,
    ),
    Setting(
        "ENVSETUP_CUDA_DRIVER_VERSION",
        "override",
        "`550.144.03`",
        "the NVIDIA driver version; the maximum CUDA version is derived from it unless forced too",
        _OVERRIDE_READERS,
    ),
    Setting(
        "UV_CUDA_DRIVER_VERSION",
        "override",
        "as `ENVSETUP_CUDA_DRIVER_VERSION`",
        "uv's spelling, read when `ENVSETUP_CUDA_DRIVER_VERSION` is unset",
        _OVERRIDE_READERS,
    ),
    Setting(
        "ENVSETUP_CUDA_VERSION",
        "override",
        "`12.4` (`12` means `12.0`)",
        "the maximum CUDA version the driver runs",
        _OVERRIDE_READERS,
    ),
    Setting(
        "CONDA_OVERRIDE_CUDA",
        "override",
        "as `ENVSETUP_CUDA_VERSION`",
        "conda's and pixi's spelling, read when `ENVSETUP_CUDA_VERSION` is unset",
        _OVERRIDE_READERS,
    ),
    Setting(
        "ENVSETUP_COMPUTE_CAP",
        "override",
        "`8.6`, or one per GPU: `8.0,9.0` (`sm_86` accepted)",
        "the GPUs' compute capabilities; with no GPU detected, the target machine's GPUs",
        _OVERRIDE_READERS,
    ),
    Setting(
        "ENVSETUP_AMD_GPU_ARCHITECTURE",
        "override",
        "`gfx1100`, or one per GPU: `gfx90a,gfx942` (`gfx90a:sramecc+:xnack-` accepted)",
        "the AMD GPUs' gfx targets, as `--amd-arch`; with no AMD GPU detected, the target "
        "machine's GPUs",
        _OVERRIDE_READERS,
    ),
    Setting(
        "UV_AMD_GPU_ARCHITECTURE",
        "override",
        "as `ENVSETUP_AMD_GPU_ARCHITECTURE`",
        "uv's spelling, read when `ENVSETUP_AMD_GPU_ARCHITECTURE` is unset",
        _OVERRIDE_READERS,
    ),
    # Which GPUs the processes started here see.
    Setting(
        "CUDA_VISIBLE_DEVICES",
        "visibility",
        "indices, UUIDs or UUID prefixes: `0,1`",
        "the GPUs CUDA shows (up to the first entry naming no GPU); plans and tests count only "
        "those",
        "detect, the pytest plugin (xdist workers get one entry each)",
    ),
    Setting(
        "HIP_VISIBLE_DEVICES",
        "visibility",
        "as `CUDA_VISIBLE_DEVICES`",
        "the AMD GPUs ROCm shows; split among pytest-xdist workers on AMD",
        "the pytest plugin",
    ),
    Setting(
        "NVIDIA_VISIBLE_DEVICES",
        "text",
        "`all`, `none`, indices or UUIDs",
        "the container runtime's GPU list; recorded as evidence, a warning when it is `none` / "
        "`void`",
        "detect",
    ),
    # Where and how installs happen.
    Setting(
        "ENVSETUP_INDEX_URL",
        "url",
        "a PEP 503 mirror of download.pytorch.org/whl",
        "the PyTorch index to plan and install from (default for `--index-url-base`)",
        "`plan`, `install`, `venv`, the nox/tox integrations",
    ),
    Setting(
        "ENVSETUP_ALLOW_INSECURE_INDEX",
        "flag",
        "`1` or `true`",
        "admit an http:// index (a CI cache on the local network), as `--allow-insecure-index`",
        "`plan`, `install`, `venv`, `matrix update`, the nox/tox integrations",
    ),
    Setting(
        "ENVSETUP_INSTALLER",
        "choice",
        "`auto`, `pip` or `uv`",
        "the installer (default for `--installer`; `auto`: uv when on PATH, else pip)",
        "`plan`, `install`, `venv`",
    ),
    Setting(
        "VIRTUAL_ENV",
        "path",
        "an environment's prefix",
        "the active virtual environment: the target when `--python` is not given",
        "`plan`, `install`, `verify`",
    ),
    Setting(
        "CONDA_PREFIX",
        "path",
        "an environment's prefix",
        "the active conda environment: the target after `VIRTUAL_ENV` (never conda's base)",
        "`plan`, `install`, `verify`",
    ),
    Setting(
        "CONDA_DEFAULT_ENV",
        "text",
        "an environment's name",
        "`base` marks `CONDA_PREFIX` as conda's base environment, which is never a target",
        "`plan`, `install`, `verify`",
    ),
    Setting(
        "PIP_CONFIG_FILE",
        "path",
        "a pip configuration file",
        "read for how to reach an index (proxy, certificates); pip then runs without it",
        "`install`, `venv` with pip",
    ),
    Setting(
        "UV_CONFIG_FILE",
        "path",
        "a uv.toml",
        "read for how to reach an index; uv then runs without it",
        "`install`, `venv` with uv",
    ),
    Setting(
        "UV_NO_CONFIG",
        "text",
        "uv's truthy words: `1`, `true`, `yes`, `on`, `t`, `y`",
        "uv's own switch: no system/user/project uv.toml is read for settings to keep",
        "`install`, `venv` with uv",
    ),
    # Fleets, caches, diagnostics.
    Setting(
        "ENVSETUP_HOSTNAME",
        "text",
        "a node name",
        "the node's name in a fleet's plan (a Kubernetes Job passes spec.nodeName)",
        "`detect`, `verify --merge` reports",
    ),
    Setting(
        "SLURMD_NODENAME",
        "text",
        "a node name",
        "Slurm's node name, used when `ENVSETUP_HOSTNAME` is unset",
        "`detect`, `verify --merge` reports",
    ),
    Setting(
        "ENVSETUP_CACHE_DIR",
        "path",
        "a directory; empty turns the cache off",
        "where parsed matrices are cached (default: the user cache directory)",
        "every verb that reads the matrices",
    ),
    Setting(
        "ENVSETUP_EVIDENCE_CACHE",
        "path",
        "a directory",
        "where downloaded wheel ranges and the facts read from them are kept "
        "(default `~/.cache/envsetup-evidence`)",
        "`matrix verify`",
    ),
    Setting(
        "ENVSETUP_DEBUG",
        "text",
        "any non-empty value",
        "an internal error shows its traceback",
        "every verb",
    ),
    # Tests.
    Setting(
        "ENVSETUP_DEVICE",
        "text",
        "`auto`, `all`, `cpu`, `cuda`, `cuda:N`, `mps` or a list `cpu,cuda:0`",
        "the device of the `device` fixture (below `--envsetup-device`, above the ini value)",
        "the pytest plugin",
    ),
    Setting(
        "ENVSETUP_GPU",
        "choice",
        "`auto`, `require`, `skip`, `only`",
        "what happens to tests with envsetup's `gpu` marker (the plugin's `--envsetup-gpu`)",
        "the pytest plugin",
    ),
    Setting(
        "ENVSETUP_MISSING_HARDWARE",
        "choice",
        "`skip`, `fail`, `run`",
        "what a verify cell does on a runner without its hardware (`-- --missing-hardware`)",
        _NOXFILE,
    ),
    Setting(
        "ENVSETUP_NEWEST",
        "integer",
        "a positive number",
        "only the N newest torch releases",
        _NOXFILE,
    ),
    Setting("ENVSETUP_TORCH", "text", "a specifier: `>=2.4`", "only these releases", _NOXFILE),
    Setting("ENVSETUP_PYTHON", "list", "`3.11,3.12`", "only these Pythons", _NOXFILE),
    Setting(
        "ENVSETUP_VARIANTS",
        "list",
        "`cpu,cuda` (variants or kinds)",
        "only these variants",
        _NOXFILE,
    ),
    Setting(
        "ENVSETUP_WITH",
        "list",
        "`torchvision,torchaudio`",
        "companions installed with torch (default none)",
        _NOXFILE,
    ),
    Setting(
        "ENVSETUP_CELL_TORCH",
        "text",
        "a torch version, set by the noxfile",
        "the torch release a `verify` cell installed, checked by its small suite",
        "tests/cell_suite (inside a cell)",
    ),
    Setting(
        "ENVSETUP_CELL_VARIANT",
        "text",
        "a variant, set by the noxfile",
        "the variant a `verify` cell installed, checked by its small suite",
        "tests/cell_suite (inside a cell)",
    ),
)

_BY_NAME = {entry.name: entry for entry in SETTINGS}


def setting(name: str) -> Setting:
    """The declaration of `name`; LookupError names the file to declare a new variable in."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise LookupError(f"{name} is not declared in envsetup/settings.py") from None


def get(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The variable's value as set (None when unset; an empty value is returned as such, since
    `ENVSETUP_CACHE_DIR=""` means something)."""
    setting(name)
    return (os.environ if environ is None else environ).get(name)


def flag(name: str, environ: Mapping[str, str] | None = None) -> bool:
    """Whether a flag variable is on: `1` or `true`, any case, blanks ignored."""
    return (get(name, environ) or "").strip().lower() in ("1", "true")


def markdown() -> str:
    """The docs table of every variable, in declaration order."""
    lines = ["| variable | value | meaning | read by |", "|---|---|---|---|"]
    for entry in SETTINGS:
        lines.append(f"| `{entry.name}` | {entry.value} | {entry.meaning} | {entry.read_by} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m envsetup.settings --markdown`: print the docs table."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args != ["--markdown"]:
        print("usage: python -m envsetup.settings --markdown", file=sys.stderr)
        return 2
    sys.stdout.write(markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
