"""Errors that reach the user: each says what was found, what was expected, and what to do."""

from __future__ import annotations


class EnvsetupError(Exception):
    """A job envsetup could not do; the CLI prints the message and the hint, exit code 1."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class UsageError(EnvsetupError):
    """Bad user input (a flag, a specifier, an unreadable file): exit code 2."""

    exit_code = 2
