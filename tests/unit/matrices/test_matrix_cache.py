"""The parsed-matrices cache in a directory others may reach (envsetup/matrices/user_cache.py).

Each test plays one attack or accident on the cache directory and checks that envsetup neither
touches the user's files, nor waits, nor runs out of memory, nor plans from planted data: the
worst outcome allowed is parsing the TOML again.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from envsetup import matrices
from envsetup.matrices import _toml

REPO = Path(__file__).resolve().parents[3]
DATA = REPO / "matrices"
FIRST = "1.12.0"  # the first release in torch.toml; a forged cache says otherwise

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions and links")


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    target = tmp_path / "m"
    shutil.copytree(DATA, target)
    return target


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private cache directory (owned by us, 0700), as envsetup creates one."""
    directory = tmp_path / "cache"
    directory.mkdir(mode=0o700)
    monkeypatch.setenv("ENVSETUP_CACHE_DIR", str(directory))
    return directory


def first_release(directory: Path) -> str:
    release: str = _toml.read_documents(directory)["torch.toml"]["release"][0]["torch"]
    return release


def only_entry(cache: Path) -> Path:
    [entry] = cache.iterdir()
    return entry


def forged(entry: Path) -> bytes:
    """The entry's bytes with the first release renamed: same length, whatever the format."""
    data = entry.read_bytes()
    assert FIRST.encode() in data
    return data.replace(FIRST.encode(), b"6.66.6")


def test_the_cache_serves_the_files_it_was_written_for(copy: Path, cache: Path) -> None:
    assert first_release(copy) == FIRST
    entry = only_entry(cache)
    entry.write_bytes(forged(entry))
    assert first_release(copy) == "6.66.6"  # read from the cache, not parsed again


def test_an_edit_that_keeps_size_and_mtime_is_seen(copy: Path, cache: Path) -> None:
    """Sizes and mtimes are public and easy to keep: the key is the content."""
    assert first_release(copy) == FIRST
    path = copy / "torch.toml"
    before = path.stat()
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace(f'"{FIRST}"', '"0.12.0"', 1), encoding="utf-8")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size
    assert first_release(copy) == "0.12.0"


@posix_only
def test_links_planted_at_cache_names_never_redirect_a_write(copy: Path, cache: Path) -> None:
    """A link at the entry's name or at a temporary name (the old `.PID.tmp`) is never
    written through: the user's file keeps its content."""
    first_release(copy)
    entry = only_entry(cache)
    entry.unlink()
    victim = cache.parent / "victim.txt"
    victim.write_text("the user's own file\n", encoding="utf-8")
    planted = [entry, entry.with_suffix(f".{os.getpid()}.tmp")]
    for link in planted:
        link.symlink_to(victim)
    assert first_release(copy) == FIRST
    assert victim.read_text(encoding="utf-8") == "the user's own file\n"
    assert entry.is_file() and not entry.is_symlink()  # the link was replaced, not followed
    leftovers = [path for path in cache.iterdir() if path.suffix == ".tmp"]
    assert leftovers == planted[1:]


def _fifo(entry: Path) -> None:
    os.mkfifo(entry)


def _link_to_dev_zero(entry: Path) -> None:
    entry.symlink_to("/dev/zero")


def _huge_sparse_file(entry: Path) -> None:
    with entry.open("wb") as file:
        file.truncate(4 * 1024**3)


def _marshal_list_header(entry: Path) -> None:
    entry.write_bytes(b"[\xff\xff\xff\x7f")  # "a list of 2**31-1 items": 16 GiB for marshal


def _truncated(entry: Path) -> None:
    data = entry.read_bytes()
    entry.write_bytes(data[: len(data) // 2])


def _garbage(entry: Path) -> None:
    entry.write_bytes(b"\x00garbage\xff")


def _deep_nesting(entry: Path) -> None:
    entry.write_bytes(b"[" * 1_000_000)


#: Run in a child with 1 GiB of address space and a deadline, so that a regression fails
#: quickly instead of taking the machine's memory or hanging the suite.
_CHILD = """
import resource, sys
from pathlib import Path
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
import envsetup.matrices._toml as m
print(m.read_documents(Path(sys.argv[1]))["torch.toml"]["release"][0]["torch"])
"""


@posix_only
@pytest.mark.parametrize(
    "plant",
    [
        _fifo,
        _link_to_dev_zero,
        _huge_sparse_file,
        _marshal_list_header,
        _truncated,
        _garbage,
        _deep_nesting,
    ],
)
def test_a_bad_cache_file_means_parsing_again_quickly(
    copy: Path, cache: Path, plant: Callable[[Path], None]
) -> None:
    first_release(copy)
    entry = only_entry(cache)
    if plant is not _truncated:
        entry.unlink()
    plant(entry)
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (child.returncode, child.stdout.strip()) == (0, FIRST), child.stderr[-2000:]


@posix_only
@pytest.mark.parametrize("mode", [0o775, 0o757, 0o777, 0o1777], ids=oct)
def test_a_cache_directory_others_can_write_is_not_used(
    copy: Path, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: int
) -> None:
    """Whoever can write the directory could have planted the entry: it is not read, and
    nothing is written there either."""
    first_release(copy)
    shared = tmp_path / "shared"
    shared.mkdir()
    entry = only_entry(cache)
    (shared / entry.name).write_bytes(forged(entry))
    shared.chmod(mode)
    before = sorted(shared.iterdir())
    monkeypatch.setenv("ENVSETUP_CACHE_DIR", str(shared))
    assert first_release(copy) == FIRST
    assert first_release(copy) == FIRST
    assert sorted(shared.iterdir()) == before


@posix_only
@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs chown")
def test_a_cache_directory_of_another_user_is_not_used(
    copy: Path, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first_release(copy)
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    entry = only_entry(cache)
    (theirs / entry.name).write_bytes(forged(entry))
    os.chown(theirs, 65534, 65534)
    os.chown(theirs / entry.name, 65534, 65534)
    monkeypatch.setenv("ENVSETUP_CACHE_DIR", str(theirs))
    assert first_release(copy) == FIRST
    assert [path.name for path in theirs.iterdir()] == [entry.name]


@posix_only
def test_a_cache_directory_that_is_a_link_is_not_used(
    copy: Path, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whoever could plant the link chose where envsetup writes: it is not followed."""
    first_release(copy)
    entry = only_entry(cache)
    entry.write_bytes(forged(entry))
    link = tmp_path / "link"
    link.symlink_to(cache)
    monkeypatch.setenv("ENVSETUP_CACHE_DIR", str(link))
    assert first_release(copy) == FIRST


@posix_only
def test_entries_are_private_and_written_whole(
    copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = tmp_path / "new" / "cache"
    monkeypatch.setenv("ENVSETUP_CACHE_DIR", str(created))
    first_release(copy)
    assert stat.S_IMODE(created.stat().st_mode) == 0o700
    entry = only_entry(created)
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600
    assert json.loads(entry.read_bytes())["documents"] == _toml.read_documents(copy)


@pytest.mark.parametrize(
    "documents",
    [[], {"torch.toml": {}}, {"nvidia.toml": [], "torch.toml": {}, "archs.toml": {}}],
    ids=["a list", "files missing", "a file not a table"],
)
def test_an_entry_of_the_wrong_shape_is_parsed_again(
    copy: Path, cache: Path, documents: object
) -> None:
    first_release(copy)
    entry = only_entry(cache)
    payload = json.loads(entry.read_bytes())
    entry.write_text(json.dumps({"key": payload["key"], "documents": documents}), "utf-8")
    assert first_release(copy) == FIRST


@posix_only
def test_paths_that_are_not_utf8_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Linux paths are bytes: an install or cache directory named in Latin-1 is fine."""
    data = tmp_path / os.fsdecode(b"install-\xe9\xff")
    try:
        shutil.copytree(DATA, data)
    except OSError:
        pytest.skip("this file system refuses non-UTF-8 names")
    cache = tmp_path / os.fsdecode(b"cache-\xe9")
    monkeypatch.setenv("ENVSETUP_CACHE_DIR", str(cache))
    assert first_release(data) == FIRST
    assert first_release(data) == FIRST
    assert len(list(cache.iterdir())) == 1
    assert matrices.load(data).releases[0].torch == FIRST
