"""Run a stdlib-only script in another Python interpreter and read the JSON it prints.

`installed` (what the target environment holds) and `verify` (what its torch does) both ask an
interpreter that is not this one: running it, and turning a missing interpreter, a hang or an
unreadable answer into one EnvsetupError, lives here once.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from typing import Any

from envsetup.errors import EnvsetupError

__all__ = ["PYTHON_TAG", "reported_json", "run_script"]

#: A stdlib expression (needs `sys` and `sysconfig` imported) that, run in another interpreter,
#: is its version as the matrices spell it: "3.11", or "3.13t" when free-threaded.
PYTHON_TAG = (
    "'%d.%d' % sys.version_info[:2] + ('t' if sysconfig.get_config_var('Py_GIL_DISABLED') else '')"
)


def run_script(
    argv: Sequence[str],
    *,
    timeout: float,
    not_found: EnvsetupError,
    timed_out: EnvsetupError | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `argv` (an interpreter, then its arguments) to the end, capturing its text output.

    A missing interpreter raises `not_found`, a timeout `timed_out` (default: "could not run"),
    any other failure to start it "could not run" with the system's reason; the caller judges
    the exit code and the output, which only it can explain.
    """
    python = argv[0]
    try:
        return subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError:
        raise not_found from None
    except subprocess.TimeoutExpired as error:
        raise timed_out or EnvsetupError(f"could not run {python!r}: {error}") from None
    except OSError as error:
        raise EnvsetupError(f"could not run {python!r}: {error.strerror}") from None


def reported_json(stdout: str, marker: str = "") -> Any:
    """The JSON after `marker` on the last output line that starts with it (the script's answer
    comes last; torch or site hooks may print before it); None when there is no such JSON."""
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith(marker):
            try:
                return json.loads(line[len(marker) :])
            except json.JSONDecodeError:
                return None
    return None
