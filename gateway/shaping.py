"""What the client gets back, in the shape of the dialect it spoke (spec sections 2, 6, 7).

G3 clients get the result activity itself (errors: the request plus ``error``).
G2 clients get the same result with their ``context`` string beside the
canonical ``@context``, and errors as ``{"context": "error", "error", "content"}``.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

from schemas.platform_registry import BASE_CONTEXT_URLS

Dialect = Literal["g3", "g2"]
JSONDict = dict[str, Any]

ERROR_EVENT_ACTOR = {"type": "Application", "name": "sockethub-server"}


def detect_dialect(payload: object) -> Dialect:
    """A string ``context`` and no ``@context`` means G2."""
    if not isinstance(payload, dict) or "@context" in payload:
        return "g3"
    return "g2" if isinstance(payload.get("context"), str) else "g3"


def error_ack(payload: object, error: str, dialect: Dialect | None = None) -> JSONDict:
    """The request plus ``error`` (G3), or the G2 error envelope around the request."""
    dialect = dialect or detect_dialect(payload)
    if dialect == "g2":
        return {"context": "error", "error": error, "content": copy.deepcopy(payload)}
    if isinstance(payload, dict):
        return {**copy.deepcopy(payload), "error": error}
    return {"error": error}


def result_ack(
    activity: JSONDict, platform: str, dialect: Dialect, original: object = None
) -> JSONDict:
    """A platform result (or an unsolicited platform event) for the client.

    A result that carries ``error`` is a failure: G2 clients get it wrapped
    around ``original`` (what they sent), or around the result without its error.
    """
    error = activity.get("error")
    if dialect == "g2":
        if isinstance(error, str):
            if original is None:
                original = _as_g2({k: v for k, v in activity.items() if k != "error"}, platform)
            return error_ack(original, error, "g2")
        return _as_g2(activity, platform)
    return activity


def _as_g2(activity: JSONDict, platform: str) -> JSONDict:
    return {"context": platform, **activity}


def error_event(summary: str, platform_context: list[str] | None = None) -> JSONDict:
    """The ``error`` event that announces a rate-limit block or the connection cap."""
    return {
        "type": "Error",
        "@context": list(platform_context or BASE_CONTEXT_URLS),
        "actor": dict(ERROR_EVENT_ACTOR),
        "summary": summary,
    }
