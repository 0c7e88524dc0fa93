"""Where each verb's output goes: the artefact on stdout, everything said about it on stderr.

stdout carries only what a user redirects or pipes (a command, a file snippet, a JSON
document, a report), so `envsetup plan --installer requirements > requirements.txt` writes a
valid file; explanations (`why:`, `then run:`, warnings) go to stderr, and `-q` drops them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from envsetup.errors import UsageError

__all__ = ["add_output_arguments", "emit", "note"]


def add_output_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, *, snippet: bool = False
) -> None:
    """`--json` and `-q` for every verb; `-o FILE` for verbs whose artefact is a file snippet."""
    parser.add_argument(
        "--json", action="store_true", help="one JSON document on stdout, errors included"
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="print only the result: no explanations"
    )
    if snippet:
        parser.add_argument(
            "-o", "--output", metavar="FILE", help="write the command or snippet to FILE"
        )


def note(args: argparse.Namespace, *lines: str) -> None:
    """Explanations for people: stderr, and nothing with -q or --json."""
    if lines and not (getattr(args, "quiet", False) or getattr(args, "json", False)):
        from envsetup.terminal import printable

        print(printable("\n".join(lines)), file=sys.stderr, flush=True)


def emit(args: argparse.Namespace, text: str) -> None:
    """The artefact: to `-o FILE` when given, else stdout."""
    target = getattr(args, "output", None)
    if target is None:
        print(text.rstrip("\n"), flush=True)
        return
    try:
        Path(target).write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    except OSError as error:
        raise UsageError(f"cannot write {target}: {error.strerror}") from None
    note(args, f"wrote {target}")
