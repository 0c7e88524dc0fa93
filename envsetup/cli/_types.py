"""argparse value types more than one verb uses, in a module `detect` can import cheaply."""

from __future__ import annotations

import argparse

__all__ = ["seconds"]


def seconds(text: str) -> float:
    """A --timeout value: more than 0 and at most 600 s (`detect`, `matrix update`)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 600:
        raise argparse.ArgumentTypeError(f"expected seconds between 0 and 600, got {text!r}")
    return value
