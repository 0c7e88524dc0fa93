"""Credentials in URLs stay out of what envsetup says: messages, `$ …` lines, errors, JSON.

A private mirror is often given as `https://user:token@host/simple`. pip shows such a URL as
`https://user:****@host/simple` (a lone token as `****@host`) everywhere it logs one; envsetup
does the same. Only the artefact the user asked for (the command or snippet `plan` prints, the
command `install --dry-run` prints) holds the URL as given, since it must work when pasted.
"""

from __future__ import annotations

import re

__all__ = ["redact"]

#: A URL's scheme and authority: up to the first `/`, `?`, `#`, whitespace or quote.
_AUTHORITY = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<netloc>[^/?#\s'\"`<>]*)")


def _hide(match: re.Match[str]) -> str:
    netloc = match["netloc"]
    if "@" not in netloc:
        return match[0]
    userinfo, host = netloc.rsplit("@", 1)
    user, colon, _ = userinfo.partition(":")
    shown = f"{user}:****" if colon else "****"
    return f"{match['scheme']}{shown}@{host}"


def redact(text: str) -> str:
    """`text` with the password (or lone token) of every URL in it replaced by `****`, as pip
    shows it (`pip._internal.utils.misc.redact_netloc`)."""
    return _AUTHORITY.sub(_hide, text)
