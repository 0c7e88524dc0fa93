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
from envsetup.process import OutputFlood, capture

__all__ = ["MAX_OUTPUT", "PYTHON_TAG", "reported_json", "run_script"]

#: A stdlib expression (needs `sys` and `sysconfig` imported) that, run in another interpreter,
#: is its version as the matrices spell it: "3.11", or "3.13t" when free-threaded.
PYTHON_TAG = (
    "'%d.%d' % sys.version_info[:2] + ('t' if sysconfig.get_config_var('Py_GIL_DISABLED') else '')"
)


#: The most an interpreter script may print: verify's answer is a few KB. Past it the interpreter
#: (a wrapper gone wrong, a hook printing in a loop) is stopped instead of filling memory.
MAX_OUTPUT = 8 << 20


def run_script(
    argv: Sequence[str],
    *,
    timeout: float,
    not_found: EnvsetupError,
    timed_out: EnvsetupError | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `argv` (an interpreter, then its arguments) to the end, capturing its text output.

    It runs in its own process group, stopped as a group on a timeout, past MAX_OUTPUT bytes and
    on Ctrl-C, so nothing it started outlives it. A missing interpreter raises `not_found`, a
    timeout `timed_out` (default: "could not run"), any other failure to start it "could not
    run" with the system's reason; the caller judges the exit code and the output, which only it
    can explain.
    """
    python = argv[0]
    try:
        code, stdout, stderr = capture(argv, timeout=timeout, limit=MAX_OUTPUT)
    except FileNotFoundError:
        raise not_found from None
    except subprocess.TimeoutExpired:
        raise timed_out or EnvsetupError(
            f"could not run {python!r}: no answer within {timeout:g} s; it was stopped"
        ) from None
    except OutputFlood:
        raise EnvsetupError(
            f"{python!r} printed more than {MAX_OUTPUT >> 20} MiB and was stopped",
            hint=f"run `{python} -c pass` to see what it prints (a sitecustomize or wrapper "
            "script printing in a loop?)",
        ) from None
    except OSError as error:
        raise EnvsetupError(f"could not run {python!r}: {error.strerror}") from None
    return subprocess.CompletedProcess(
        list(argv), code, stdout.decode("utf-8", "replace"), stderr.decode("utf-8", "replace")
    )


def reported_json(stdout: str, marker: str) -> Any:
    """The JSON between the last `marker` and the end of its line; None when there is none.

    The script prints its answer as `marker` + one line of JSON; whatever else runs in that
    interpreter (a sitecustomize, torch's warnings, an atexit hook) may print before or after
    it, even without a newline, so neither "the last line" nor "a line that starts with it" is
    the answer.
    """
    start = stdout.rfind(marker)
    if start < 0:
        return None
    line = stdout[start + len(marker) :].split("\n", 1)[0]
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return None
