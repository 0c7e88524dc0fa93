"""matrices/*.toml read into rows, through a per-user cache of the parsed documents: TOML
parsing and tomllib's import would otherwise cost every `plan` several milliseconds.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from envsetup.matrices import user_cache
from envsetup.matrices.schema import (
    ArchList,
    MatricesError,
    MinorCompat,
    Release,
    RocmTargets,
    Toolkit,
)
from envsetup.matrices.user_cache import cache_directory

try:
    from _blake2 import blake2b  # what hashlib.blake2b is, without hashlib's OpenSSL import
except ImportError:  # pragma: no cover - a Python built without it
    from hashlib import blake2b


#: Data files, in load order.
FILES = ("nvidia.toml", "torch.toml", "archs.toml")
#: Part of every cache key: bump it when the cached layout changes, and old entries stop matching.
_CACHE_FORMAT = 2


class _Row:
    """Typed access to one TOML table, with errors that name the file and row."""

    def __init__(self, data: Mapping[str, Any], where: str) -> None:
        self.data = data
        self.where = where

    def fail(self, key: str, expected: str) -> MatricesError:
        return MatricesError(
            f"{self.where}: key {key!r} is {self.data.get(key)!r}, expected {expected}",
            hint="fix the data file (schema in matrices/README.md)",
        )

    def text(self, key: str, default: str | None = None) -> str:
        value = self.data.get(key, default)
        if not isinstance(value, str):
            raise self.fail(key, "a string")
        return value

    def opt_text(self, key: str) -> str | None:
        return self.text(key) if key in self.data else None

    def integer(self, key: str, default: int | None = None) -> int:
        value = self.data.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.fail(key, "an integer")
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(key, "true or false")
        return value

    def texts(self, key: str, default: tuple[str, ...] | None = ()) -> tuple[str, ...]:
        value = self.data.get(key, default)
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise self.fail(key, "a list of strings")
        return tuple(value)

    def table(self, key: str) -> Mapping[str, Any]:
        value = self.data.get(key, {})
        if not isinstance(value, dict):
            raise self.fail(key, "a table")
        return value

    def text_lists(self, key: str) -> dict[str, tuple[str, ...]]:
        sub = _Row(self.table(key), f"{self.where}.{key}")
        return {name: sub.texts(name) for name in sub.data}

    def text_map(self, key: str) -> dict[str, str]:
        sub = _Row(self.table(key), f"{self.where}.{key}")
        return {name: sub.text(name) for name in sub.data}


def _rows(document: Mapping[str, Any], key: str, filename: str) -> list[_Row]:
    items = document.get(key, [])
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise MatricesError(f"{filename}: [[{key}]] must be an array of tables")
    return [_Row(item, f"{filename} [[{key}]] #{n + 1}") for n, item in enumerate(items)]


def _minimums(row: _Row) -> dict[str, Any]:
    """The fields every driver-minimum row shares (see `_DriverMinimums`)."""
    return {
        "linux": row.opt_text("linux"),
        "windows": row.opt_text("windows"),
        "source": row.text("source"),
        "unconfirmed": row.texts("unconfirmed"),
        "notes": row.text("notes", ""),
    }


def _toolkit(row: _Row) -> Toolkit:
    return Toolkit(
        cuda=row.text("cuda"),
        update=row.integer("update"),
        release=row.text("release"),
        branch=row.opt_text("branch"),
        **_minimums(row),
    )


def _minor_compat(row: _Row) -> MinorCompat:
    return MinorCompat(cuda_major=row.integer("cuda_major"), **_minimums(row))


#: Written in place of a companion version when none pairs with the release.
NONE = "none"


def _release(row: _Row) -> Release:
    vision = row.text("torchvision")
    audio = row.text("torchaudio")
    return Release(
        torch=row.text("torch"),
        date=row.text("date"),
        python=row.texts("python", None),
        variants=row.text_lists("variants"),
        pypi_default=row.text_map("pypi_default"),
        torchvision=None if vision == NONE else vision,
        torchaudio=None if audio == NONE else audio,
        sources=row.texts("sources", None),
        python_unconfirmed=row.texts("python_unconfirmed"),
        python_platforms=row.text_lists("python_platforms"),
        python_variants=row.text_lists("python_variants"),
        confirmed=row.flag("confirmed", True),
        unconfirmed=row.texts("unconfirmed"),
        notes=row.text("notes", ""),
    )


def untagged_platform(row: _Row) -> str:
    """The platform of one `[[untagged]]` row; its source is required like every fact's."""
    row.text("source")
    return row.text("platform")


def _arch_list(row: _Row) -> ArchList:
    return ArchList(
        torch=row.text("torch"),
        variant=row.text("variant"),
        platforms=row.texts("platforms", None),
        sm=row.texts("sm", None),
        ptx=row.opt_text("ptx"),
        source=row.text("source"),
        confirmed=row.flag("confirmed", True),
        notes=row.text("notes", ""),
    )


def _rocm(row: _Row) -> RocmTargets:
    return RocmTargets(
        variant=row.text("variant"),
        gfx=row.texts("gfx", None),
        source=row.text("source"),
        confirmed=row.flag("confirmed", True),
        notes=row.text("notes", ""),
    )


def _read_sources(directory: Path) -> dict[str, bytes]:
    """The bytes of every data file: hashed for the cache key, then parsed when not cached."""
    sources: dict[str, bytes] = {}
    for name in FILES:
        path = directory / name
        try:
            sources[name] = path.read_bytes()
        except FileNotFoundError:
            raise MatricesError(
                f"compatibility data not found: {path}",
                hint="reinstall envsetup, or point load() at a directory holding "
                + ", ".join(FILES),
            ) from None
    return sources


def _parse(directory: Path, sources: Mapping[str, bytes]) -> dict[str, dict[str, Any]]:
    """Parse every data file; a malformed one becomes one clear error."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.9/3.10 only
        import tomli as tomllib

    documents: dict[str, dict[str, Any]] = {}
    for name, data in sources.items():
        try:
            documents[name] = tomllib.loads(data.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise MatricesError(
                f"{directory / name} is not valid TOML: {error}",
                hint="fix the file or restore it from git",
            ) from None
    return documents


def _cache_key(sources: Mapping[str, bytes]) -> str:
    """A digest of the data files' content and the cache format: any edit, even one that keeps
    size and mtime, is a new key. blake2b from `_blake2`, as hashlib itself serves it, because
    importing hashlib loads OpenSSL (~2 ms a start)."""
    digest = blake2b(f"envsetup matrices cache {_CACHE_FORMAT}".encode(), digest_size=20)
    for name, data in sources.items():
        digest.update(f"\0{name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def _decode(cached: bytes | None, key: str) -> dict[str, dict[str, Any]] | None:
    """The documents a cache file holds, or None for anything but an entry written for `key`."""
    if cached is None:
        return None
    try:
        payload = json.loads(cached)
    except (ValueError, RecursionError):
        return None
    if not isinstance(payload, dict) or payload.get("key") != key:
        return None
    documents = payload.get("documents")
    if not isinstance(documents, dict) or sorted(documents) != sorted(FILES):
        return None
    if not all(isinstance(document, dict) for document in documents.values()):
        return None
    return documents


def read_documents(directory: Path) -> dict[str, dict[str, Any]]:
    """The parsed data files, from the cache when one holds exactly these files' content.

    TOML parsing costs ~8 ms and tomllib's import more, on every `plan`; reading the cache costs
    about 1 ms. The cache is JSON, not marshal: decoding it cannot crash the interpreter or
    allocate more than the file's size, whoever wrote it. It is best effort (`user_cache`).
    """
    sources = _read_sources(directory)
    cache = cache_directory()
    if cache is None:
        return _parse(directory, sources)
    key = _cache_key(sources)
    name = f"matrices-{key}.json"
    documents = _decode(user_cache.read(cache, name), key)
    if documents is None:
        documents = _parse(directory, sources)
        try:
            encoded = json.dumps({"key": key, "documents": documents}, separators=(",", ":"))
        except (TypeError, ValueError):  # a value JSON cannot hold (a TOML date): no cache
            return documents
        user_cache.write(cache, name, encoded.encode("ascii"))
    return documents
