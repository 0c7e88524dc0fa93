"""`envsetup.nox`: the documented path of the helpers in `envsetup.integrations.nox`.

Users' noxfiles call `envsetup.nox.install_torch` and `envsetup.nox.cells`; this keeps
that spelling working while the code lives with the other integrations."""

from __future__ import annotations

from envsetup.integrations.nox import (
    cells,
    install_envsetup,
    install_torch,
    plan_for_python,
    session_python,
)

__all__ = ["cells", "install_envsetup", "install_torch", "plan_for_python", "session_python"]
