"""The environment an installer runs in: nothing but the plan chooses where torch comes from.

Besides its command line, an installer finds package sources in variables, in configuration
files and in files those name (a requirements or constraints file may hold `--extra-index-url`),
and a torch from any of them can win over the planned index. Each tool has its own rules:

- pip reads every variable whose name starts with `PIP_`, the rest lower-cased with `_` → `-`
  (`PIP_Extra_Index_Url` is `--extra-index-url`), and the global, user and site `pip.conf`, or
  `PIP_CONFIG_FILE`; `PIP_CONFIG_FILE=os.devnull` makes it skip every file (pip's
  configuration.py, `Configuration._load_config_files`).
- uv reads its `UV_*` variables by their exact names (checked with uv 0.13.9: `UV_Extra_Index_Url`
  is not read), and the system, user and project `uv.toml` / `pyproject.toml [tool.uv]`;
  `UV_NO_CONFIG=1` skips those, but not `UV_CONFIG_FILE`, which is therefore dropped.

So installers run with no configuration file and without routing variables, and the settings of
the user's files that say how to reach an index (proxy, certificates, trusted hosts, timeouts,
retries, keyring) are handed over as the variables each tool reads for them.
"""

from __future__ import annotations

import configparser
import locale
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envsetup import settings

__all__ = ["Isolation", "announce", "isolate"]

#: pip settings (pip's spelling) that add a package source, or a file that may name one.
#: `index-url` is not among them: the plan's `--index-url` (or `--no-index`) overrides it, and
#: for a PyPI plan it is the user's PyPI mirror.
PIP_ROUTING = frozenset({"extra-index-url", "find-links", "requirement", "constraint", "editable"})

#: pip settings taken over from the user's configuration files: how to reach an index, not which.
PIP_KEPT = (
    "index-url",
    "proxy",
    "cert",
    "client-cert",
    "trusted-host",
    "timeout",
    "retries",
    "keyring-provider",
    "cache-dir",
)

#: uv variables that add or replace a package source (UV_DEFAULT_INDEX even beats the
#: `--index-url` flag), pick torch's index by themselves (UV_TORCH_BACKEND), name files that may
#: hold index options (constraints, overrides), or name a configuration file UV_NO_CONFIG
#: does not switch off.
UV_ROUTING = (
    "UV_EXTRA_INDEX_URL",
    "UV_INDEX",
    "UV_DEFAULT_INDEX",
    "UV_INDEX_URL",
    "UV_FIND_LINKS",
    "UV_TORCH_BACKEND",
    "UV_CONSTRAINT",
    "UV_OVERRIDE",
    "UV_BUILD_CONSTRAINT",
    "UV_CONFIG_FILE",
)

#: Keys of a uv settings table (top level and `[pip]`) that choose package sources.
UV_ROUTING_KEYS = (
    "index",
    "index-url",
    "extra-index-url",
    "find-links",
    "torch-backend",
    "constraint-dependencies",
    "override-dependencies",
)

#: uv settings taken over from its configuration files, and the variable uv reads for each.
UV_KEPT = {
    "native-tls": "UV_NATIVE_TLS",
    "allow-insecure-host": "UV_INSECURE_HOST",
    "keyring-provider": "UV_KEYRING_PROVIDER",
    "cache-dir": "UV_CACHE_DIR",
}

#: How uv spells "yes" in a boolean variable.
_UV_TRUE = frozenset({"1", "true", "yes", "on", "t", "y"})

#: What every installer run gets: no configuration file at all.
NO_CONFIG = {"PIP_CONFIG_FILE": os.devnull, "UV_NO_CONFIG": "1"}


@dataclass(frozen=True)
class Isolation:
    """The installer's environment, and what it leaves out or carries over, for the notice."""

    environ: dict[str, str]
    #: Relative to the inherited environment; None removes a variable (nox's convention).
    changes: dict[str, str | None]
    ignored: tuple[str, ...]
    kept: tuple[str, ...]

    @property
    def notice(self) -> str | None:
        """What the user is told, or None when nothing they set is left out."""
        if not self.ignored:
            return None
        ignored = ", ".join(self.ignored)
        text = f"envsetup: ignoring {ignored}: torch comes only from the planned index"
        if self.kept:
            text += f" (kept: {', '.join(self.kept)})"
        return text


def _name(key: str) -> str:
    """A variable's name as the installer compares it: Windows names ignore case."""
    return key.upper() if os.name == "nt" else key


def pip_option(key: str) -> str | None:
    """The pip setting a variable sets (pip's `Configuration.get_environ_vars`), or None."""
    key = _name(key)
    if not key.startswith("PIP_"):
        return None
    return key[4:].lower().replace("_", "-")


def _home(environ: Mapping[str, str]) -> Path:
    return Path(environ.get("HOME") or environ.get("USERPROFILE") or Path.home())


def _xdg(environ: Mapping[str, str], name: str, default: str) -> list[Path]:
    return [Path(part) for part in (environ.get(name) or default).split(os.pathsep) if part]


def pip_config_files(environ: Mapping[str, str]) -> list[Path]:
    """The files pip would read, lowest precedence first (pip's `iter_config_files`; the site
    file inside the target environment is left out: envsetup does not know its prefix here)."""
    explicit = settings.get("PIP_CONFIG_FILE", environ)
    if explicit == os.devnull:
        return []
    home = _home(environ)
    if sys.platform == "win32":
        appdata = Path(environ.get("APPDATA") or home / "AppData" / "Roaming")
        programdata = Path(environ.get("PROGRAMDATA") or "C:\\ProgramData")
        system = [programdata / "pip" / "pip.ini"]
        user = [home / "pip" / "pip.ini", appdata / "pip" / "pip.ini"]
    else:
        if sys.platform == "darwin":
            system = [Path("/Library/Application Support/pip/pip.conf")]
            support = home / "Library" / "Application Support" / "pip"
            user_dir = support if support.is_dir() else home / ".config" / "pip"
        else:
            dirs = _xdg(environ, "XDG_CONFIG_DIRS", "/etc/xdg")
            system = [*(d / "pip" / "pip.conf" for d in dirs), Path("/etc/pip.conf")]
            user_dir = _xdg(environ, "XDG_CONFIG_HOME", str(home / ".config"))[0] / "pip"
        user = [home / ".pip" / "pip.conf", user_dir / "pip.conf"]
    if explicit and Path(explicit).exists():
        user = []
    return [*system, *user, *([Path(explicit)] if explicit else [])]


def _pip_file_settings(path: Path) -> dict[str, str] | None:
    """The settings of one pip file that apply to `pip install` ([global], then [install])."""
    parser = configparser.RawConfigParser()
    try:
        parser.read(path, encoding=locale.getpreferredencoding(False))
    except (configparser.Error, UnicodeDecodeError):
        return None
    settings: dict[str, str] = {}
    for section in ("global", "install"):
        if parser.has_section(section):
            for name, value in parser.items(section):
                settings[name.lower().replace("_", "-")] = value
    return settings


def _uv_config_files(environ: Mapping[str, str], cwd: Path) -> list[Path]:
    """The files uv would read, lowest precedence first: system, user, project, UV_CONFIG_FILE
    (read even with UV_NO_CONFIG)."""
    uv_file = settings.get("UV_CONFIG_FILE", environ)
    explicit = [Path(uv_file)] if uv_file else []
    if (settings.get("UV_NO_CONFIG", environ) or "").lower() in _UV_TRUE:
        return explicit
    home = _home(environ)
    if sys.platform == "win32":
        system = [Path(environ.get("PROGRAMDATA") or "C:\\ProgramData") / "uv" / "uv.toml"]
        user = [Path(environ.get("APPDATA") or home / "AppData" / "Roaming") / "uv" / "uv.toml"]
    else:
        system = [d / "uv" / "uv.toml" for d in _xdg(environ, "XDG_CONFIG_DIRS", "/etc")]
        user = [_xdg(environ, "XDG_CONFIG_HOME", str(home / ".config"))[0] / "uv" / "uv.toml"]
    project: list[Path] = []
    for directory in (cwd, *cwd.parents):
        if (directory / "uv.toml").is_file():
            project = [directory / "uv.toml"]
        elif "uv" in _load_toml(directory / "pyproject.toml").get("tool", {}):
            project = [directory / "pyproject.toml"]
        if project:
            break
    return [*system, *user, *project, *explicit]


def _load_toml(path: Path) -> dict[str, Any]:
    """A TOML file's tables, or {} when it is missing or not TOML (uv would refuse it)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.9/3.10 only
        import tomli as tomllib
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except (OSError, ValueError):
        return {}


def _uv_tables(path: Path) -> Iterator[dict[str, Any]]:
    """The settings tables uv reads in a file: top level and `[pip]` (in pyproject.toml, under
    `[tool.uv]`)."""
    document = _load_toml(path)
    settings = document.get("tool", {}).get("uv", {}) if path.name == "pyproject.toml" else document
    if isinstance(settings, dict):
        yield settings
        if isinstance(settings.get("pip"), dict):
            yield settings["pip"]


def isolate(environ: Mapping[str, str], *, cwd: Path | None = None) -> Isolation:
    """`environ` as an installer should get it: no configuration file, no routing variable, and
    the network settings of the user's configuration files handed over as variables."""
    ignored: list[str] = []
    kept: list[str] = []
    changes: dict[str, str | None] = {}
    for key, value in environ.items():
        option = pip_option(key)
        routing = option in PIP_ROUTING or _name(key) in UV_ROUTING
        if routing or key in NO_CONFIG:
            changes[key] = None
            if routing and value:
                ignored.append(key)
    pip_settings: dict[str, str] = {}
    for path in pip_config_files(environ):
        if not path.is_file():
            continue
        settings = _pip_file_settings(path)
        if settings is None:
            ignored.append(f"{path} (unreadable)")
            continue
        routing_keys = [name for name in settings if name in PIP_ROUTING]
        if routing_keys:
            ignored.append(f"{', '.join(routing_keys)} in {path}")
        pip_settings.update(settings)
    from_variables = {pip_option(key) for key in environ}
    for name in PIP_KEPT:
        if name in pip_settings and name not in from_variables:
            changes["PIP_" + name.upper().replace("-", "_")] = pip_settings[name]
            kept.append(name)
    uv_settings: dict[str, Any] = {}
    for path in _uv_config_files(environ, cwd or Path.cwd()):
        for table in _uv_tables(path):
            routing_keys = [name for name in UV_ROUTING_KEYS if name in table]
            if routing_keys:
                ignored.append(f"{', '.join(routing_keys)} in {path}")
            uv_settings.update(table)
    for name, variable in UV_KEPT.items():
        if name in uv_settings and variable not in environ:
            changes[variable] = _uv_value(uv_settings[name])
            kept.append(name)
    changes.update(NO_CONFIG)
    result = {key: value for key, value in environ.items() if key not in changes}
    result.update({key: value for key, value in changes.items() if value is not None})
    return Isolation(result, changes, tuple(dict.fromkeys(ignored)), tuple(dict.fromkeys(kept)))


def _uv_value(value: Any) -> str:
    """A uv setting as its variable spells it: lists space-separated, booleans true/false."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return " ".join(str(item) for item in value)
    return str(value)


_TOLD: set[str] = set()


def announce(isolation: Isolation, say: Callable[[str], object]) -> None:
    """Say what was ignored, once per process: a venv's steps and nox's or tox's sessions
    inherit the same settings, and one notice is enough."""
    notice = isolation.notice
    if notice is not None and notice not in _TOLD:
        _TOLD.add(notice)
        say(notice)
