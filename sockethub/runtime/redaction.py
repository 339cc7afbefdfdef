"""Secrets out of logged structures: credentials must never reach a log line.

A log line is kept longer and read by more people than the request that caused it, so
every structure that is logged goes through :func:`redact` first, and strings are scrubbed
of ``'password': '...'``-style pairs that a ``repr`` (a validation error, an exception
text) may carry.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REDACTED = "[redacted]"

# Substrings, matched case-insensitively against a key: "sasl_password", "accessToken",
# "client_secret" and "credentials" are all caught.
_SECRET_PARTS = ("password", "passwd", "secret", "token", "credential", "authorization", "cookie")

# Depth beyond which a structure is replaced whole: logging must not recurse without bound.
_MAX_DEPTH = 32

_NAMES = "|".join(_SECRET_PARTS)
# A quoted or bare key naming a secret, ':' or '=', then a quoted value or a bare word.
_PAIR = re.compile(
    rf"""(?P<key>["']?[\w-]*(?:{_NAMES})[\w-]*["']?\s*[:=]\s*)"""
    r"""(?P<value>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s,;}\])]+)""",
    re.IGNORECASE,
)


def is_secret_key(key: object) -> bool:
    """True when a mapping key names a credential."""
    if not isinstance(key, str):
        return False
    lowered = key.lower()
    return any(part in lowered for part in _SECRET_PARTS)


def scrub_text(text: str) -> str:
    """The text with the value of every ``<secret key>: <value>`` pair replaced."""
    return _PAIR.sub(lambda m: m.group("key") + REDACTED, text)


def redact(value: Any, _depth: int = 0) -> Any:
    """A copy of ``value`` with secret keys' values replaced, through nested dicts and lists."""
    if _depth > _MAX_DEPTH:
        return REDACTED
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, Mapping):
        return {
            k: REDACTED if is_secret_key(k) else redact(v, _depth + 1) for k, v in value.items()
        }
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [redact(v, _depth + 1) for v in value]
        return tuple(items) if isinstance(value, tuple) else items
    return value
