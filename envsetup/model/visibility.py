"""Which GPUs `CUDA_VISIBLE_DEVICES` leaves visible, by CUDA's own rule: the one place it is read.

CUDA reads the list left to right. Each entry is a device index or a prefix of a `GPU-` / `MIG-`
UUID; the first entry that names no device (out of range, negative, empty, unknown or ambiguous
UUID, a device already listed) ends the list, and every entry after it is ignored. So with three
GPUs, `0,7,1` shows only GPU 0, and `""` or `-1` shows none. detect, plan, the pytest plugin and
xdist worker pinning all ask `cuda_visible`, so they can never disagree about what torch will see.
"""

from __future__ import annotations

from dataclasses import dataclass

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (start-up time)
if TYPE_CHECKING:
    from collections.abc import Sequence

    from envsetup.model.machine import Gpu, Machine


@dataclass(frozen=True)
class Visible:
    """What CUDA makes of one `CUDA_VISIBLE_DEVICES` value on one set of GPUs."""

    is_set: bool  # False: the variable is unset and every GPU is visible
    entries: tuple[str, ...]  # the entries CUDA honours, as written, in its order (cuda:0 first)
    gpus: tuple[Gpu, ...]  # the GPUs those entries name, in that order
    ignored: tuple[str, ...] = ()  # the first invalid entry and every one after it
    reason: str = ""  # why ignored[0] names no device

    @property
    def hides_all(self) -> bool:
        """Set, and no entry CUDA honours: CUDA programs (torch) see no GPU at all."""
        return self.is_set and not self.entries


def parse_entries(raw: str) -> tuple[str, ...]:
    """The entries of a `CUDA_VISIBLE_DEVICES` value as written (blanks around them dropped);
    an empty value has none. Empty entries inside the list stay: CUDA stops at them."""
    if not raw.strip():
        return ()
    return tuple(part.strip() for part in raw.split(","))


def cuda_visible(entries: Sequence[str] | None, gpus: Sequence[Gpu]) -> Visible:
    """Apply CUDA's rule to `entries` (None = unset) over `gpus` (one vendor's, enumerated by
    the driver). With no GPU enumerated (only a driver was found) entries are checked for
    form alone: an index or a UUID prefix is kept, anything else still ends the list."""
    if entries is None:
        return Visible(False, tuple(str(gpu.index) for gpu in gpus), tuple(gpus))
    honoured: list[str] = []
    chosen: list[Gpu] = []
    seen: set[str] = set()
    for position, entry in enumerate(entries):
        problem, gpu = _judge(entry, gpus)
        key = entry if gpu is None else _identity(gpu, entry)
        if problem is None and key in seen:
            problem = f"names {entry!r}, a device already listed"
        if problem is not None:
            rest = tuple(entries[position:])
            return Visible(True, tuple(honoured), tuple(chosen), rest, problem)
        seen.add(key)
        honoured.append(entry)
        if gpu is not None and gpu not in chosen:
            chosen.append(gpu)
    return Visible(True, tuple(honoured), tuple(chosen))


def visible(machine: Machine) -> Visible:
    """`cuda_visible` for the machine's recorded `CUDA_VISIBLE_DEVICES` and NVIDIA GPUs."""
    return cuda_visible(machine.visible_gpus, machine.nvidia_gpus)


def describe_ignored(seen: Visible, variable: str = "CUDA_VISIBLE_DEVICES") -> str:
    """One line for a user: which entries CUDA ignores and why ("" when none is)."""
    if not seen.ignored:
        return ""
    shown = ",".join(seen.ignored)
    kept = ",".join(seen.entries) or "none"
    return (
        f"{variable} {seen.reason}: CUDA ignores it and every entry after it "
        f"({shown!r}); visible: {kept}"
    )


def _judge(entry: str, gpus: Sequence[Gpu]) -> tuple[str | None, Gpu | None]:
    """(why `entry` names no device or None, the GPU it names when GPUs are enumerated)."""
    if not entry:
        return "has an empty entry", None
    if entry.isdigit() and entry.isascii():
        if not gpus:
            return None, None
        found = next((gpu for gpu in gpus if gpu.index == int(entry)), None)
        if found is None:
            return f"names GPU {entry} but only {len(gpus)} exist", None
        return None, found
    if entry.startswith(("GPU-", "MIG-")):
        if not gpus:
            return None, None
        matches = [gpu for gpu in gpus if _names(gpu, entry)]
        if len(matches) == 1:
            return None, matches[0]
        if matches:
            return f"names {entry!r}, a prefix of several GPUs' UUIDs", None
        return f"names {entry!r}, which matches no GPU's UUID", None
    return f"names {entry!r}, neither a device index nor a GPU-/MIG- UUID", None


def _names(gpu: Gpu, entry: str) -> bool:
    if entry.startswith("GPU-"):
        return bool(gpu.uuid and gpu.uuid.startswith(entry))
    return any(mig.uuid and mig.uuid.startswith(entry) for mig in gpu.mig_devices)


def _identity(gpu: Gpu, entry: str) -> str:
    """What makes two entries the same device: the GPU, or one MIG instance of it."""
    if entry.startswith("MIG-"):
        mig = next(mig for mig in gpu.mig_devices if mig.uuid and mig.uuid.startswith(entry))
        return f"mig {mig.uuid}"
    return f"gpu {gpu.index}"
