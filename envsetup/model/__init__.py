"""Plain typed values the stages pass along: Machine, variants, Request, Plan. No I/O."""

from __future__ import annotations
