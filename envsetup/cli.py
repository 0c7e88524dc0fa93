"""The `envsetup` command line: one verb per module in `envsetup.commands`.

Each verb module provides `HELP` (one line), `configure(parser)` and `run(args) -> int`. This
module only wires them together and turns errors into one clear message and an exit code:
0 success, 1 the job could not be done, 2 usage error. No traceback reaches the user unless
ENVSETUP_DEBUG=1 is set.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from envsetup import __version__
from envsetup.errors import EnvsetupError
from envsetup.redact import redact

VERBS = ("detect", "plan", "install", "venv", "verify", "matrix")


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, sized as `shutil.get_terminal_size` would but without importing
    shutil (with bz2 and lzma): argparse builds one per argument, help or not, ~2 ms a start."""

    def __init__(self, prog: str) -> None:
        try:
            columns = int(os.environ.get("COLUMNS", ""))
        except ValueError:
            columns = 0
        stdout = sys.__stdout__
        if columns <= 0 and stdout is not None:
            try:
                columns = os.get_terminal_size(stdout.fileno()).columns
            except (ValueError, OSError):  # not a terminal
                columns = 0
        super().__init__(prog, width=(columns if columns > 0 else 80) - 2)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """All verbs, or just `only`: importing every verb module costs more than `detect` itself."""
    parser = argparse.ArgumentParser(
        prog="envsetup",
        description="Pick, install and verify the right PyTorch build for this machine.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"envsetup {__version__}")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    for verb in VERBS if only is None else (only,):
        module = importlib.import_module(f"envsetup.commands.{verb}")
        sub = verbs.add_parser(
            verb, help=module.HELP, description=module.HELP, formatter_class=HelpFormatter
        )
        module.configure(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if not words or (words[0].startswith("-") and words[0] not in ("-h", "--help", "--version")):
        words = ["plan", *words]  # bare `envsetup [--torch 2.5.1 ...]`: the flags are plan's
    named = next((word for word in words if not word.startswith("-")), None)
    parser = build_parser(named if named in VERBS else None)
    args = parser.parse_args(words)
    try:
        return int(args.run(args))
    except EnvsetupError as error:
        from envsetup.terminal import printable

        print(printable(f"envsetup: error: {redact(str(error))}"), file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("envsetup: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    except Exception as error:
        if os.environ.get("ENVSETUP_DEBUG"):
            raise
        print(
            f"envsetup: internal error: {type(error).__name__}: {redact(str(error))}\n"
            "  hint: rerun with ENVSETUP_DEBUG=1 for the traceback and report it",
            file=sys.stderr,
        )
        return 1
