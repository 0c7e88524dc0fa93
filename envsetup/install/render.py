"""Format a Plan for an installer or a project file, quoted for the user's shell.

Renderers only format: every decision (versions, index, `--pre`, reinstall) is already in the
Plan, and the pip/uv lines come from the same `install_argv` the executors run, so what is
printed is what `envsetup install` would do. Torch-family packages are routed only through
`--index-url` or an explicit per-package index, never through an extra index.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Sequence
from dataclasses import replace

from envsetup.errors import EnvsetupError, UsageError
from envsetup.install.argv import install_argv, source_options
from envsetup.model.plan import Plan

__all__ = ["FORMATS", "SHELLS", "command_lines", "quote_argv", "render"]

FORMATS = ("pip", "uv", "uv-project", "requirements", "poetry", "pixi", "conda")
SHELLS = ("posix", "powershell", "cmd")

_SAFE = re.compile(r"[A-Za-z0-9_./:=+@-]+")
_CMD_UNQUOTABLE = re.compile(r'[%"!\r\n^]')


def quote_argv(argv: Sequence[str], shell: str = "posix") -> str:
    """One command line in which every argument reaches the program exactly as given."""
    if shell == "posix":
        return shlex.join(argv)
    if shell == "powershell":
        return " ".join(_powershell_quote(arg) for arg in argv)
    if shell == "cmd":
        return " ".join(_cmd_quote(arg) for arg in argv)
    raise UsageError(f"--shell {shell!r}: expected one of {', '.join(SHELLS)}")


#: What PowerShell takes for a single quote: ASCII and the typographic U+2018..U+201B alike end
#: a single-quoted string (its tokenizer's `IsSingleQuote`); each is written twice inside one.
_POWERSHELL_QUOTES = re.compile("['\u2018\u2019\u201a\u201b]")


def _powershell_quote(arg: str) -> str:
    # Single-quoted PowerShell strings are literal; a quote is written twice. Commas, `@`, `$`,
    # braces and parentheses all mean something unquoted, so only plain words stay bare.
    if _SAFE.fullmatch(arg) and not arg.startswith("@"):
        return arg
    return "'" + _POWERSHELL_QUOTES.sub(lambda quote: quote[0] * 2, arg) + "'"


def _cmd_quote(arg: str) -> str:
    # cmd expands %VAR% and !VAR! even inside double quotes and has no escape there, so such
    # arguments are refused rather than passed on altered.
    if _CMD_UNQUOTABLE.search(arg):
        raise EnvsetupError(
            f"cannot quote {arg!r} safely for cmd.exe (it contains % ! ^ or a quote)",
            hint="use --shell powershell",
        )
    if _SAFE.fullmatch(arg):
        return arg
    return f'"{arg}"'


def command_lines(plan: Plan, fmt: str = "pip", shell: str = "posix") -> list[str]:
    """The commands a user runs for `fmt`: the install line, or how to use the written file."""
    if fmt in ("pip", "uv"):
        rest = [
            install_argv(
                replace(
                    plan, packages=args, index_url=None, find_links=None, pre=False, replaces=None
                ),
                installer=fmt,
            )
            for args in plan.follow_up
        ]
        return [quote_argv(argv, shell) for argv in (install_argv(plan, installer=fmt), *rest)]
    follow_up = {
        "uv-project": ["uv", "sync"],
        "requirements": ["python", "-m", "pip", "install", "-r", "requirements.txt"],
        "poetry": ["poetry", "install"],
        "pixi": ["pixi", "install"],
        "conda": ["conda", "env", "create", "-f", "environment.yml"],
    }
    if fmt not in follow_up:
        raise UsageError(f"--installer {fmt!r}: expected one of {', '.join(FORMATS)}")
    argv = list(follow_up[fmt])
    if fmt == "requirements" and plan.replaces is not None:
        argv.append("--force-reinstall")
    return [quote_argv(argv, shell)]


def render(plan: Plan, fmt: str = "pip", shell: str = "posix") -> str:
    """The text to print for `fmt`: a command line, or a file snippet (shell-independent)."""
    if fmt in ("pip", "uv"):
        return "\n".join(command_lines(plan, fmt, shell))
    renderers: dict[str, Callable[[Plan], str]] = {
        "uv-project": _uv_project,
        "requirements": _requirements,
        "poetry": _poetry,
        "pixi": _pixi,
        "conda": _conda,
    }
    if fmt not in renderers:
        raise UsageError(f"--installer {fmt!r}: expected one of {', '.join(FORMATS)}")
    return renderers[fmt](plan)


def _split(pin: str) -> tuple[str, str]:
    """ "torch==2.5.1+cu121" → ("torch", "==2.5.1+cu121"); a bare name has an empty spec."""
    match = re.match(r"([A-Za-z0-9_.-]+)(.*)", pin)
    assert match is not None
    return match[1], match[2]


def _index_name(plan: Plan) -> str:
    prefix = "pytorch" if plan.channel == "stable" else f"pytorch-{plan.channel}"
    return f"{prefix}-{plan.variant}"


#: Escapes both TOML basic strings and YAML double-quoted scalars read the same way.
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _quoted(value: str) -> str:
    """A TOML basic string, also a valid YAML double-quoted scalar, in ASCII: anything else is
    escaped by code point (`\\U0001F600`; JSON's surrogate pairs are invalid in TOML)."""
    parts = ['"']
    for char in value:
        code = ord(char)
        if char in _ESCAPES:
            parts.append(_ESCAPES[char])
        elif 0xD800 <= code <= 0xDFFF:
            raise UsageError(
                f"{value!r} is not valid Unicode (it holds a lone surrogate, U+{code:04X})",
                hint="pass the URL or name as UTF-8 text",
            )
        elif 0x20 <= code < 0x7F:
            parts.append(char)
        elif code <= 0xFFFF:
            parts.append(f"\\u{code:04X}")
        else:
            parts.append(f"\\U{code:08X}")
    return "".join(parts) + '"'


def _header(plan: Plan) -> str:
    return (
        f"envsetup plan: torch {plan.torch} ({plan.variant}) for {plan.platform}, "
        f"Python {plan.python}"
    )


def _uv_project(plan: Plan) -> str:
    lines = [f"# {_header(plan)}", "[project]", "dependencies = ["]
    lines += [f"    {_quoted(pin)}," for pin in plan.packages]
    lines.append("]")
    source_url = plan.find_links or plan.index_url
    if plan.pre or source_url is not None:
        lines += ["", "[tool.uv]"]
        if plan.pre:
            lines.append('prerelease = "allow"')
    if source_url is not None:
        # Lock only for the planned platform: the pinned local builds exist nowhere else.
        lines.append(f"environments = [{_quoted(_marker(plan))}]")
        lines += [
            "",
            "[[tool.uv.index]]",
            f"name = {_quoted(_index_name(plan))}",
            f"url = {_quoted(source_url)}",
        ]
        if plan.find_links is not None:
            lines.append('format = "flat"')
        lines += ["explicit = true", "", "[tool.uv.sources]"]
        lines += [
            f"{_split(pin)[0]} = [{{ index = {_quoted(_index_name(plan))} }}]"
            for pin in plan.packages
        ]
    return "\n".join(lines) + "\n"


def _marker(plan: Plan) -> str:
    os_name, _, arch = plan.platform.partition("-")
    sys_platform = {"linux": "linux", "windows": "win32", "macos": "darwin"}[os_name]
    machine = {"amd64": "AMD64", "arm64": "arm64"}.get(arch, arch)
    return f"sys_platform == '{sys_platform}' and platform_machine == '{machine}'"


def _pip_lines(plan: Plan) -> list[str]:
    """The requirements-file lines of a plan: where from, --pre, then the pins."""
    return [" ".join(option) for option in source_options(plan)] + list(plan.packages)


def _requirements(plan: Plan) -> str:
    return "\n".join([f"# {_header(plan)}", *_pip_lines(plan)]) + "\n"


def _poetry(plan: Plan) -> str:
    if plan.find_links is not None:
        raise EnvsetupError(
            "poetry cannot use a flat --find-links directory as a package source",
            hint="use a PEP 503 mirror with --index-url-base, or --installer pip/uv",
        )
    lines = [f"# {_header(plan)}"]
    if plan.index_url is not None:
        lines += [
            "[[tool.poetry.source]]",
            f"name = {_quoted(_index_name(plan))}",
            f"url = {_quoted(plan.index_url)}",
            'priority = "explicit"',
            "",
        ]
    lines.append("[tool.poetry.dependencies]")
    for pin in plan.packages:
        name, spec = _split(pin)
        fields = [f"version = {_quoted(spec.removeprefix('==') or '*')}"]
        if plan.index_url is not None:
            fields.append(f"source = {_quoted(_index_name(plan))}")
        if plan.pre:
            fields.append("allow-prereleases = true")
        lines.append(f"{name} = {{ {', '.join(fields)} }}")
    return "\n".join(lines) + "\n"


def _pixi(plan: Plan) -> str:
    lines = [f"# {_header(plan)}"]
    if plan.find_links is not None or plan.pre:
        lines.append("[pypi-options]")
        if plan.find_links is not None:
            lines.append(f"find-links = [{{ url = {_quoted(plan.find_links)} }}]")
        if plan.pre:
            lines.append('prerelease-mode = "allow"')
        lines.append("")
    lines.append("[pypi-dependencies]")
    for pin in plan.packages:
        name, spec = _split(pin)
        fields = [f"version = {_quoted(spec or '*')}"]
        if plan.index_url is not None and plan.find_links is None:
            fields.append(f"index = {_quoted(plan.index_url)}")
        lines.append(f"{name} = {{ {', '.join(fields)} }}")
    return "\n".join(lines) + "\n"


def _conda(plan: Plan) -> str:
    # Quoted and escaped scalars: no pin or URL can break the document.
    lines = [
        f"# {_header(plan)}",
        "name: torch",
        "channels:",
        "  - conda-forge",
        "dependencies:",
        f"  - python={plan.python.removesuffix('t')}",
        "  - pip",
        "  - pip:",
    ]
    lines += [f"      - {_quoted(item)}" for item in _pip_lines(plan)]
    return "\n".join(lines) + "\n"
