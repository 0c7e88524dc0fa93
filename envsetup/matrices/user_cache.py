"""The per-user cache directory, and files in it that no other user can plant, swap or redirect.

`XDG_CACHE_HOME` or `ENVSETUP_CACHE_DIR` may point at a shared directory, so nothing there is
trusted by its path: the directory is opened once without following a link and used only when
the current user owns it and nobody else can write to it; every file is then opened relative to
that handle without following links, and read only when it is a regular file of bounded size;
new files get an unpredictable name and `O_EXCL`, and are renamed into place. Anything unexpected
means "no cache", never an error or a wait: the caller recomputes what it wanted.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

from envsetup import settings

__all__ = ["MAX_BYTES", "cache_directory", "read", "user_cache_home", "write"]

#: No cache file is larger; a bigger one is not read (a planted huge file, a link to /dev/zero).
MAX_BYTES = 8 * 1024 * 1024

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
#: Opening a FIFO for reading would wait for a writer; non-blocking, it opens and fstat rejects it.
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_FLAGS = _NOFOLLOW | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
#: Handle-relative calls and owners exist on Linux, macOS and the BSDs; on Windows the default
#: directory (LOCALAPPDATA) is private by its ACL and files are reached by path.
_AT = os.open in os.supports_dir_fd and os.rename in os.supports_dir_fd and hasattr(os, "geteuid")


def cache_directory() -> Path | None:
    """Where envsetup caches: ENVSETUP_CACHE_DIR, else the user cache directory.

    ENVSETUP_CACHE_DIR set to an empty string turns the cache off.
    """
    configured = settings.get("ENVSETUP_CACHE_DIR")
    if configured is not None:
        return Path(configured) if configured else None
    home = user_cache_home()
    if home is None:
        return None
    return home / "envsetup" / "cache" if sys.platform == "win32" else home / "envsetup"


def user_cache_home() -> Path | None:
    """This OS's per-user cache folder (LOCALAPPDATA, XDG_CACHE_HOME or ~/.cache, ~/Library/
    Caches), or None where there is none (no HOME and no passwd entry, as in some containers)."""
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA")
        return Path(base) if base else None
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and sys.platform != "darwin":
        return Path(xdg)
    try:
        home = Path.home()
    except RuntimeError:
        return None
    return home / "Library" / "Caches" if sys.platform == "darwin" else home / ".cache"


class _Directory:
    """The cache directory, opened: names resolve against its handle, so renaming or replacing
    the path after the ownership check changes nothing."""

    def __init__(self, path: Path, handle: int | None) -> None:
        self.path = path
        self.handle = handle

    def _name(self, name: str) -> str:
        return name if self.handle is not None else str(self.path / name)

    def open(self, name: str, flags: int, mode: int = 0o600) -> int:
        return os.open(self._name(name), flags | _FLAGS, mode, dir_fd=self.handle)

    def replace(self, source: str, target: str) -> None:
        os.replace(
            self._name(source), self._name(target), src_dir_fd=self.handle, dst_dir_fd=self.handle
        )

    def unlink(self, name: str) -> None:
        os.unlink(self._name(name), dir_fd=self.handle)


def _owned(info: os.stat_result) -> bool:
    return info.st_uid == os.geteuid()


@contextlib.contextmanager
def _opened(path: Path, create: bool) -> Iterator[_Directory | None]:
    """`path` as a `_Directory` when only the current user can change what is in it, else None."""
    handle = None
    try:
        if create:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        if _AT:
            handle = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _FLAGS)
            info = os.fstat(handle)
            private = stat.S_ISDIR(info.st_mode) and _owned(info) and not info.st_mode & 0o022
        else:  # pragma: no cover - Windows
            private = path.is_dir()
    except OSError:
        private = False
    try:
        yield _Directory(path, handle) if private else None
    finally:
        if handle is not None:
            os.close(handle)


def read(path: Path, name: str) -> bytes | None:
    """The content of cache file `name` in `path`, or None when there is no usable one."""
    with _opened(path, create=False) as directory:
        if directory is None:
            return None
        try:
            handle = directory.open(name, os.O_RDONLY | _NONBLOCK)
        except OSError:  # missing, a link (ELOOP), unreadable
            return None
        with os.fdopen(handle, "rb") as file:
            try:
                info = os.fstat(handle)
                if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_BYTES:
                    return None
                if _AT and not _owned(info):
                    return None
                data = file.read(MAX_BYTES + 1)
            except OSError:
                return None
        return data if len(data) <= MAX_BYTES else None


def write(path: Path, name: str, data: bytes) -> None:
    """Put `data` at `name` in `path` in one step, or nothing: the cache is best effort."""
    if len(data) > MAX_BYTES:
        return
    with _opened(path, create=True) as directory:
        if directory is None:
            return
        partial = f".{name}.{os.urandom(8).hex()}.tmp"
        try:
            handle = directory.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        except OSError:
            return
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(data)
            directory.replace(partial, name)
        except OSError:
            with contextlib.suppress(OSError):
                directory.unlink(partial)
