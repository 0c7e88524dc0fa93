"""The `envsetup` command line: one verb per module in `envsetup.cli`.

Each verb module provides `HELP` (one line), `configure(parser)` and `run(args) -> int`. This
module only wires them together and turns errors into one clear message and an exit code:
0 success, 1 the job could not be done, 2 usage error. No traceback reaches the user unless
ENVSETUP_DEBUG=1 is set.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Sequence

from envsetup import __version__, settings
from envsetup.errors import EnvsetupError, UsageError
from envsetup.redact import redact

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~2 ms of every start)
if TYPE_CHECKING:
    from typing import NoReturn

VERBS = ("detect", "plan", "install", "venv", "verify", "matrix")

EPILOG = """\
examples:
  envsetup detect                         what this machine has, and where each fact came from
  envsetup plan                           the install command for the active environment
  envsetup plan --installer requirements -o requirements.txt
  envsetup install --torch 2.5.1          install into the active environment, then verify
  envsetup venv .venv --with torchvision  a new environment with torch, verified
  envsetup verify --require-gpu           prove torch works here (GPU CI jobs)

target environment: --python, else the active VIRTUAL_ENV, else the active conda env,
else envsetup's own (never a pipx or `uv tool` environment).
stdout carries only the result (command, snippet, JSON); explanations go to stderr.

exit codes:
  0    success
  1    the job could not be done (no build fits, the install or a check failed)
  2    bad input (a flag, a specifier, an unreadable file or interpreter)
  130  interrupted
"""


class Parser(argparse.ArgumentParser):
    """argparse's parser, except that with `--json` a usage error becomes a JSON document."""

    json_errors = False

    def error(self, message: str) -> NoReturn:
        if self.json_errors:
            raise UsageError(message, hint=f"see `{self.prog} --help`")
        super().error(message)


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


class _Formatter(HelpFormatter):
    """Keeps the epilog's examples and exit-code table as written (the only multi-line texts);
    one-line descriptions still wrap at the terminal's width."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def build_parser(only: str | None = None, *, json_errors: bool = False) -> Parser:
    """All verbs, or just `only`: importing every verb module costs more than `detect` itself."""
    parser = Parser(
        prog="envsetup",
        description="Pick, install and verify the right PyTorch build for this machine.",
        epilog=EPILOG,
        formatter_class=_Formatter,
    )
    parser.json_errors = json_errors
    parser.add_argument("-V", "--version", action="version", version=f"envsetup {__version__}")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    for verb in VERBS if only is None else (only,):
        module = importlib.import_module(f"envsetup.cli.{verb}")
        sub = verbs.add_parser(
            verb,
            help=module.HELP,
            description=module.HELP,
            epilog=getattr(module, "EPILOG", None),
            formatter_class=_Formatter,
        )
        sub.json_errors = json_errors
        module.configure(sub)
        sub.set_defaults(run=module.run)
    return parser


def _json_error(error: EnvsetupError) -> None:
    """The failure as the JSON document `--json` promises (stdout), so scripts can read it."""
    document = {
        "error": {
            "message": redact(error.message),
            "hint": None if error.hint is None else redact(error.hint),
            "exit_code": error.exit_code,
        }
    }
    print(json.dumps(document, indent=2, ensure_ascii=False), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    flags = ("-h", "--help", "-V", "--version")
    if not words or (words[0].startswith("-") and words[0] not in flags):
        words = ["plan", *words]  # bare `envsetup [--torch 2.5.1 ...]`: the flags are plan's
    named = next((word for word in words if not word.startswith("-")), None)
    wants_json = "--json" in words
    try:
        parser = build_parser(named if named in VERBS else None, json_errors=wants_json)
        args = parser.parse_args(words)
        return int(args.run(args))
    except EnvsetupError as error:
        from envsetup.terminal import printable

        print(printable(f"envsetup: error: {redact(str(error))}"), file=sys.stderr)
        if wants_json:
            _json_error(error)
        return error.exit_code
    except KeyboardInterrupt:
        print("envsetup: interrupted", file=sys.stderr)
        if wants_json:
            _json_error(_Interrupted("interrupted"))
        return 130
    except BrokenPipeError:
        return 1
    except Exception as error:
        if settings.get("ENVSETUP_DEBUG"):
            raise
        hint = "rerun with ENVSETUP_DEBUG=1 for the traceback and report it"
        print(
            f"envsetup: internal error: {type(error).__name__}: {redact(str(error))}\n"
            f"  hint: {hint}",
            file=sys.stderr,
        )
        if wants_json:
            internal = f"internal error: {type(error).__name__}: {error}"
            _json_error(EnvsetupError(internal, hint=hint))
        return 1


class _Interrupted(EnvsetupError):
    exit_code = 130
