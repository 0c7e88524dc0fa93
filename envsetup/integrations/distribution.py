"""Where this envsetup came from, as a requirement that installs the same copy elsewhere.

No registry publishes envsetup, so a nox session or tox environment cannot `pip install
envsetup`: its pytest plugin (`gpu` marker, `device` fixture) reaches a test environment only as
the checkout, wheel or git URL the running copy was installed from (PEP 610 `direct_url.json`).
"""

from __future__ import annotations

import json
from pathlib import Path

from envsetup.errors import EnvsetupError

__all__ = ["requirement"]

NAME = "envsetup"


def __dir__() -> list[str]:
    return __all__


def requirement() -> str:
    """`envsetup @ file:///…` (a checkout or wheel), `envsetup @ git+URL@COMMIT`, or
    `envsetup==VERSION` for a copy installed from an index."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        dist = distribution(NAME)
    except PackageNotFoundError:
        return _checkout_requirement()
    text = dist.read_text("direct_url.json")
    if not text:
        return f"{NAME}=={dist.version}"
    try:
        origin = json.loads(text)
        url = str(origin["url"])
    except (ValueError, KeyError, TypeError):
        raise EnvsetupError(
            f"cannot read where {NAME} {dist.version} was installed from (direct_url.json)",
            hint="reinstall envsetup from its checkout, wheel or git URL",
        ) from None
    vcs = origin.get("vcs_info")
    if isinstance(vcs, dict):
        return f"{NAME} @ {vcs.get('vcs', 'git')}+{url}@{vcs.get('commit_id', '')}".rstrip("@")
    return f"{NAME} @ {url}"


def _checkout_requirement() -> str:
    """Imported from a checkout on sys.path, never installed: that checkout."""
    root = Path(__file__).resolve().parents[2]  # envsetup/integrations/distribution.py
    if not (root / "pyproject.toml").is_file():
        raise EnvsetupError(
            f"{NAME} is neither installed nor imported from a checkout ({root})",
            hint="install it where nox or tox runs: `pip install <checkout or wheel>`",
        )
    return f"{NAME} @ {root.as_uri()}"
