"""The request a user makes and the `Plan` the resolver answers with.

A Plan is the contract between the resolver (which decides) and the renderers, executors, the
pytest plugin and the nox/tox integrations (which only read it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Union

from envsetup import settings
from envsetup.redact import redact

#: The values a Request's fields take; the CLI and integrations check user input against these.
Policy = Literal["compat", "strict"]
Channel = Literal["stable", "test", "nightly"]
POLICIES: tuple[Policy, ...] = ("compat", "strict")
CHANNELS: tuple[Channel, ...] = ("stable", "test", "nightly")

#: Default base of the PyTorch wheel indexes; `--index-url-base` / ENVSETUP_INDEX_URL replace it.
PYTORCH_INDEX_BASE = "https://download.pytorch.org/whl"

#: Set to 1 (or true) to admit http:// index URLs: the default of the CLI's
#: --allow-insecure-index, and how the nox/tox integrations are asked for it.
ALLOW_INSECURE_VARIABLE = "ENVSETUP_ALLOW_INSECURE_INDEX"


def insecure_index_allowed(environ: Mapping[str, str]) -> bool:
    """Whether `environ` opts in to http:// indexes (a CI cache on the local network)."""
    return settings.flag(ALLOW_INSECURE_VARIABLE, environ)


#: Packages that must come from the PyTorch index, never from PyPI through an extra index.
TORCH_FAMILY = ("torch", "torchvision", "torchaudio")


@dataclass(frozen=True)
class Request:
    """What the user asked for: a torch specifier, companions, a backend, a policy, a channel."""

    torch: str | None = None  # PEP 440 specifier or exact version; None = newest that works
    with_: tuple[str, ...] = ()  # companions: "torchvision", "torchaudio"
    backend: str = "auto"  # "auto" | "cuda" | "rocm" | a variant name: "cpu", "cu121", "rocm6.2"
    policy: Policy = "compat"
    channel: Channel = "stable"
    index_url_base: str = PYTORCH_INDEX_BASE
    find_links_base: str | None = None
    allow_insecure_index: bool = False
    #: torch-family specifiers from the user's files: (name, specifier, origin "req.txt:3")
    constraints: tuple[tuple[str, str, str], ...] = ()
    #: install arguments for the rest of the user's requirements, one tuple per command
    follow_up: tuple[tuple[str, ...], ...] = ()
    user_notes: tuple[str, ...] = ()  # what was ignored in those files, and why


@dataclass(frozen=True)
class Fact:
    """One fact from `matrices/` a plan rests on, and whether a primary source confirms it."""

    fact: str  # "arch list of torch 2.10.0 cu128 on linux-x86_64"
    value: str  # "sm_70 sm_75 ... sm_120"
    source: str  # the row's source URL
    confirmed: bool


@dataclass(frozen=True)
class ChannelPin:
    """The torch of a nightly/test plan: the newest build on `channel` that `spec` allows
    (`""`: any). Its exact version is known only once installed, so it never poses as one —
    an exact pin built from it (`==latest`) was an internal error after a rolled-back venv."""

    channel: Channel
    spec: str = ""  # a PEP 440 specifier, ">=2.4"

    def __str__(self) -> str:
        """How plans show it (`plan --json` "torch"): the specifier, or "latest"."""
        return self.spec or "latest"


#: What a plan installs: an exact release ("2.5.1") or a channel's newest build.
TorchPin = Union[str, ChannelPin]


def torch_specifier(torch: TorchPin) -> str | None:
    """The PEP 440 specifier an installed torch must meet for `torch` (None: any version)."""
    if isinstance(torch, ChannelPin):
        return torch.spec or None
    return f"=={torch}"


@dataclass(frozen=True)
class Plan:
    """The exact wheels to install, where from, and why."""

    torch: TorchPin  # exact release "2.5.1", or ChannelPin for the nightly/test channels
    variant: str  # "cpu" | "cu121" | "rocm6.2" | "xpu"
    index_url: str | None  # None: PyPI serves this build (macOS, Windows CPU, Linux default)
    packages: tuple[str, ...]  # exact pins: "torch==2.5.1+cu121", "torchvision==0.20.1+cu121"
    platform: str  # "linux-x86_64", ...
    python: str  # "3.11"
    policy: Policy = "compat"
    channel: Channel = "stable"
    pre: bool = False  # nightly/test channels need --pre
    find_links: str | None = None  # flat mirror directory instead of an index
    replaces: str | None = None  # the torch build already installed that this plan replaces
    # installed versions of the plan's own build that it moves to another version: a plain
    # upgrade (or downgrade), no forced reinstall, but still a change to confirm
    upgrades: str | None = None
    reasons: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    alternatives: tuple[str, ...] = ()
    facts: tuple[Fact, ...] = ()  # what the choice rests on, confirmed or inferred
    #: after the torch family: install the rest of the user's requirements from their own
    #: sources (`-r requirements.txt`, `-e DIR[group]`), one argument tuple per command
    follow_up: tuple[tuple[str, ...], ...] = ()

    def __post_init__(self) -> None:
        """The prose is for people and logs, never pasted: a credential in the index URL shows
        as `user:****` there (the commands keep it; see envsetup.redact)."""
        for name in ("reasons", "warnings", "alternatives"):
            object.__setattr__(self, name, tuple(redact(text) for text in getattr(self, name)))

    @property
    def release(self) -> str | None:
        """The exact torch release; None for a channel plan, whose version is known only once
        installed."""
        return self.torch if isinstance(self.torch, str) else None

    @property
    def source(self) -> str:
        """Where the install takes the torch family from, as users are told: the flat mirror
        when there is one (the installer then gets `--no-index`), else the index, else PyPI."""
        return self.find_links or self.index_url or "PyPI"

    def to_json(self) -> dict[str, Any]:
        return {
            "torch": str(self.torch),
            "variant": self.variant,
            "index_url": None if self.index_url is None else redact(self.index_url),
            "find_links": None if self.find_links is None else redact(self.find_links),
            "packages": list(self.packages),
            "platform": self.platform,
            "python": self.python,
            "policy": self.policy,
            "channel": self.channel,
            "pre": self.pre,
            "replaces": self.replaces,
            "upgrades": self.upgrades,
            "reasons": list(self.reasons),
            "warnings": list(self.warnings),
            "alternatives": list(self.alternatives),
            "follow_up": [list(args) for args in self.follow_up],
            "facts": [
                {
                    "fact": fact.fact,
                    "value": fact.value,
                    "source": fact.source,
                    "confirmed": fact.confirmed,
                }
                for fact in self.facts
            ],
        }
