"""The return_to check (RFC 9700 §4.11 open redirectors; RFC 6819 §4.2.4).

A URL is allowed only when, *after parsing*, its scheme and host equal an allowed prefix's, its
port is the same, it has no userinfo, and its path starts at a path-segment boundary of the
prefix's path. Anything odd — backslashes, control characters, encoded slashes that could change
the meaning of the path, other schemes — is refused outright, never "repaired".
"""

from __future__ import annotations

import functools
import re
from urllib.parse import SplitResult, urlsplit

MAX_LENGTH = 2048
_ENCODED_CONTROL = re.compile(r"%(?:[01][0-9a-fA-F]|7[fF])")
# Controls, space, DEL, a backslash, or anything beyond ASCII.
_REFUSED_CHARACTER = re.compile(r"[^\x21-\x7e]|\\")


def _parse(url: str) -> SplitResult | None:
    if not url or len(url) > MAX_LENGTH:
        return None
    if _REFUSED_CHARACTER.search(url):
        return None
    # Encoded control characters (CR/LF/NUL…) anywhere: nothing legitimate needs them, and they
    # would reach eTeacher's page decoded.
    if _ENCODED_CONTROL.search(url):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc or port == 0:
        return None
    lowered = parts.path.lower()
    if "%2f" in lowered or "%5c" in lowered or "%2e" in lowered or "%25" in lowered:
        return None
    if any(seg in (".", "..") for seg in parts.path.split("/")):
        return None
    del port
    return parts


def _port(parts: SplitResult) -> int:
    if parts.port is not None:
        return parts.port
    return 443 if parts.scheme == "https" else 80


def is_allowed(url: str, prefixes: list[str]) -> bool:
    candidate = _parse(url)
    if candidate is None:
        return False
    for scheme, host, port, path in map(_prefix, prefixes):
        if (
            candidate.scheme == scheme
            and candidate.hostname == host
            and _port(candidate) == port
            and _path_within(candidate.path or "/", path)
        ):
            return True
    return False


@functools.lru_cache(maxsize=64)
def _prefix(prefix: str) -> tuple[str, str, int, str]:
    """An allowed prefix as it is compared (the settings' prefixes, parsed once)."""
    allowed = urlsplit(prefix)
    return allowed.scheme, (allowed.hostname or "").lower(), _port(allowed), allowed.path or "/"


def _path_within(path: str, prefix: str) -> bool:
    if prefix.endswith("/"):
        return path.startswith(prefix) or path == prefix.rstrip("/")
    return path == prefix or path.startswith(prefix + "/")


def with_error(url: str, error: str) -> str:
    """return_to with ``error=`` appended (the eTeacher frontend reads it)."""
    parts = urlsplit(url)
    query = f"{parts.query}&error={error}" if parts.query else f"error={error}"
    return parts._replace(query=query, fragment="").geturl()
