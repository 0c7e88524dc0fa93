"""One module per CLI verb: `HELP`, `configure(parser)`, `run(args) -> int`."""

from __future__ import annotations
