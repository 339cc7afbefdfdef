"""The gateway's checks on incoming activities, with Sockethub's exact error texts.

Order (spec section 3 and the section 7 table): the payload is an object, is
not nested too deeply, has ``@context`` (G3), ``type`` and ``actor``; the
platform resolves from ``@context`` (G3) or ``context`` (G2) and is enabled;
credentials must say ``credentials`` in ``type`` and ``object.type``; then the
platform's JSON Schema, whose ``type`` enum is the verb check.

Schema failures read ``[<platform>] <json pointer>: <reason>`` with AJV 8's
wording. Of several failures, the one reported is the first that jsonschema
yields: it walks the schema's keywords in document order, so a top-level
``required``/``additionalProperties`` failure comes before any property's, and
properties are visited in the envelope's order (``@context``, ``type``,
``actor``, ``target``, ``object``, ``id``, ``published``). A failed ``oneOf``
whose branches are told apart by ``type`` reports the failure inside the branch
the instance's ``type`` names; otherwise it lists the branch titles.
"""

from __future__ import annotations

import copy
import re
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError

from schemas.platform_registry import (
    BASE_CONTEXT_URLS,
    FALSE_SCHEMA,
    PlatformRegistry,
    SchemaKind,
    canonical_context,
)

JSONDict = dict[str, Any]
LookupObject = Callable[[str], JSONDict | None]

MAX_DEPTH = 32
"""Objects and arrays nested deeper than this are refused before schema validation."""

NOT_AN_OBJECT = "message received is not an object."
NO_CONTEXT = "activity stream must contain an @context array."
NO_TYPE = "activity stream must contain a type property."
NO_ACTOR = "activity stream must contain an actor property."
TOO_DEEP = "activity stream is nested too deeply."
UNREGISTERED = "platform context URL not registered with this Sockethub instance."
CREDENTIALS_TYPE = "credential activity streams must have credentials set as type"
ACTIVITY_OBJECT_FAILED = "activity-object schema validation failed: "

_ARRAY_INDEX = re.compile(r"0|[1-9][0-9]*", re.ASCII)
_ACTIVITY_OBJECT_VALIDATOR = Draft7Validator(
    {
        "type": "object",
        "required": ["id", "type"],
        "properties": {
            "id": {"type": "string", "minLength": 1},
            "type": {"type": "string", "minLength": 1},
            "name": {"type": "string"},
        },
    }
)


class ActivityError(Exception):
    """A refused activity; ``message`` is the text the client gets in ``error``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class ValidatedActivity:
    platform: str
    verb: str
    activity: JSONDict
    """G3 shape: canonical 3-element @context, expanded actor/target/object."""
    dialect: Literal["g3", "g2"]
    correlation_id: str | None


def validate_message(
    payload: object, registry: PlatformRegistry, *, lookup_object: LookupObject | None = None
) -> ValidatedActivity:
    """Check a ``message`` event payload against its platform's messages schema."""
    return _validate(payload, registry, "messages", lookup_object)


def validate_credentials(
    payload: object, registry: PlatformRegistry, *, lookup_object: LookupObject | None = None
) -> ValidatedActivity:
    """Check a ``credentials`` event payload against its platform's credentials schema."""
    return _validate(payload, registry, "credentials", lookup_object)


def validate_activity_object(payload: object) -> JSONDict:
    """Check a G2 ``activity-object`` payload (a bare ``{id, type, ...}``); return a copy."""
    if not isinstance(payload, dict):
        raise ActivityError(NOT_AN_OBJECT)
    copied = _checked_copy(payload)
    error = next(_ACTIVITY_OBJECT_VALIDATOR.iter_errors(payload), None)
    if error is not None:
        pointer = _pointer(error.absolute_path)
        prefix = f"{pointer}: " if pointer else ""
        raise ActivityError(f"{ACTIVITY_OBJECT_FAILED}{prefix}{_reason(error)}")
    return copied


def _validate(
    payload: object,
    registry: PlatformRegistry,
    kind: SchemaKind,
    lookup_object: LookupObject | None,
) -> ValidatedActivity:
    if not isinstance(payload, dict):
        raise ActivityError(NOT_AN_OBJECT)
    copied = _checked_copy(payload)
    g2 = "@context" not in payload and isinstance(payload.get("context"), str)
    if not g2 and not isinstance(payload.get("@context"), list):
        raise ActivityError(NO_CONTEXT)
    if payload.get("type") is None:
        raise ActivityError(NO_TYPE)
    if payload.get("actor") is None:
        raise ActivityError(NO_ACTOR)
    platform = _g2_platform(payload, registry) if g2 else _g3_platform(payload, registry)

    activity = _normalise(copied, platform, g2, lookup_object if g2 else None)
    if kind == "credentials":
        obj = activity.get("object")
        if activity["type"] != "credentials" or not (
            isinstance(obj, dict) and obj.get("type") == "credentials"
        ):
            raise ActivityError(CREDENTIALS_TYPE)
    validator = registry.validator(platform, kind)
    if validator is None:
        raise ActivityError(f"[{platform}] this platform does not take credentials")
    fast = registry.fast_check(platform, kind)
    if fast is None or not fast(activity):
        # The compiled check only says yes or no; jsonschema decides and words the error.
        error = next(validator.iter_errors(activity), None)
        if error is not None:
            raise ActivityError(f"[{platform}] {render_error(error, validator.schema)}")

    correlation_id = activity.get("id")
    return ValidatedActivity(
        platform=platform,
        verb=activity["type"],
        activity=activity,
        dialect="g2" if g2 else "g3",
        correlation_id=correlation_id if isinstance(correlation_id, str) else None,
    )


def _checked_copy(payload: JSONDict) -> JSONDict:
    """A deep copy of the payload, refused if nested deeper than :data:`MAX_DEPTH`.

    One pass does both: the depth check and the copy the normalised activity
    is built from (the payload itself is left as it was: errors echo it).
    """
    copied: JSONDict = _copy_value(payload, 1)  # type: ignore[assignment]
    return copied


_SCALARS = frozenset({str, int, float, bool, type(None)})
"""Values :func:`_copy_value` returns as they are (checked inline: most leaves are these)."""


def _copy_value(value: object, depth: int) -> object:
    """Recursive, but never deeper than MAX_DEPTH + 1 frames: a deeper container is refused
    before its children are visited, so a hostile payload cannot exhaust the stack."""
    kind = type(value)
    if kind is dict:
        if depth > MAX_DEPTH:
            raise ActivityError(TOO_DEEP)
        depth += 1
        return {
            k: v if type(v) in _SCALARS else _copy_value(v, depth)
            for k, v in value.items()  # type: ignore[attr-defined]
        }
    if kind is list:
        if depth > MAX_DEPTH:
            raise ActivityError(TOO_DEEP)
        depth += 1
        return [v if type(v) in _SCALARS else _copy_value(v, depth) for v in value]  # type: ignore[attr-defined]
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return value
    if isinstance(value, dict | list):  # subclasses: check them the same way, copy as before
        if depth > MAX_DEPTH:
            raise ActivityError(TOO_DEEP)
        children = value.values() if isinstance(value, dict) else value
        for child in children:
            _copy_value(child, depth + 1)
    return copy.deepcopy(value)


def _g3_platform(payload: JSONDict, registry: PlatformRegistry) -> str:
    values = [value for value in payload["@context"] if isinstance(value, str)]
    candidates = list(dict.fromkeys(v for v in values if v not in BASE_CONTEXT_URLS))
    if not candidates:
        raise ActivityError(f"{UNREGISTERED} No platform @context values were provided.")
    if len(candidates) > 1:
        listed = ", ".join(candidates)
        raise ActivityError(
            f"{UNREGISTERED} Multiple platform @context values were provided: {listed}."
        )
    descriptor = registry.by_context_url(candidates[0])
    if descriptor is None:
        raise ActivityError(f"{UNREGISTERED} Unregistered platform @context value: {candidates[0]}")
    return descriptor.id


def _g2_platform(payload: JSONDict, registry: PlatformRegistry) -> str:
    platform: str = payload["context"]
    if registry.get(platform) is None:
        raise ActivityError(
            f"platform context {platform} not registered with this Sockethub instance."
        )
    return platform


def _normalise(
    copied: JSONDict, platform: str, g2: bool, lookup_object: LookupObject | None
) -> JSONDict:
    """The G3 shape of ``copied`` (the payload's private copy, whose values it takes)."""
    if not g2:
        for key in ("actor", "target", "object"):
            value = copied.get(key)
            if isinstance(value, str):
                copied[key] = _expand(key, value, lookup_object)
        return copied
    activity: JSONDict = {"@context": canonical_context(platform)}
    for key, value in copied.items():
        if key in ("context", "@context"):
            continue
        if key in ("actor", "target", "object") and isinstance(value, str):
            activity[key] = _expand(key, value, lookup_object)
        else:
            activity[key] = value
    return activity


def _expand(key: str, value: str, lookup_object: LookupObject | None) -> JSONDict:
    found = lookup_object(value) if lookup_object is not None else None
    if isinstance(found, dict):
        return copy.deepcopy(found)
    return {"content": value} if key == "object" else {"id": value}


# --- rendering jsonschema errors in AJV's words ---------------------------------------------


def render_error(error: ValidationError, root_schema: Any) -> str:
    """``<json pointer>: <reason>``, with ``activity stream`` for the top level."""
    if error.validator == "oneOf":
        return _render_one_of(error, root_schema)
    return f"{_pointer(error.absolute_path) or 'activity stream'}: {_reason(error)}"


def _render_one_of(error: ValidationError, root_schema: Any) -> str:
    raw_branches: Any = error.validator_value
    branches = [_resolve(branch, root_schema) for branch in raw_branches]
    instance_type = error.instance.get("type") if isinstance(error.instance, dict) else None
    for index, branch in enumerate(branches):
        if isinstance(instance_type, str) and instance_type in _branch_types(branch):
            inside = [e for e in error.context or () if e.relative_schema_path[0] == index]
            if inside:
                return render_error(inside[0], root_schema)
    pointer = _pointer(error.absolute_path) or "activity stream"
    titles = [branch.get("title") if isinstance(branch, dict) else None for branch in branches]
    if all(isinstance(title, str) for title in titles):
        listed = ", ".join(str(title) for title in titles)
        return f"{pointer}: must match exactly one schema in oneOf: {listed}"
    return f"{pointer}: must match exactly one schema in oneOf"


def _resolve(schema: Any, root_schema: Any) -> Any:
    """Follow local ``#/...`` references, the only kind the composed schemas use."""
    seen = 0
    while isinstance(schema, dict) and isinstance(schema.get("$ref"), str) and seen < 16:
        ref: str = schema["$ref"]
        if not ref.startswith("#/"):
            return schema
        target = root_schema
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, dict) or part not in target:
                return schema
            target = target[part]
        schema, seen = target, seen + 1
    return schema


def _branch_types(branch: Any) -> tuple[object, ...]:
    if not isinstance(branch, dict):
        return ()
    rule = branch.get("properties", {}).get("type")
    if not isinstance(rule, dict):
        return ()
    if "const" in rule:
        return (rule["const"],)
    enum = rule.get("enum")
    return tuple(enum) if isinstance(enum, list) else ()


def _pointer(path: Iterable[str | int] | deque[str | int]) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def _js_number(value: object) -> str:
    """How JavaScript's String() would print a schema number."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return str(value)


def _js_key_order(keys: Iterable[str]) -> list[str]:
    """Object keys in JavaScript's enumeration order: array indices first, ascending."""
    keys = list(keys)
    indices = [k for k in keys if _ARRAY_INDEX.fullmatch(k) and int(k) < 2**32 - 1]
    return sorted(indices, key=int) + [k for k in keys if k not in set(indices)]


def _additional_property(error: ValidationError) -> str:
    schema = error.schema if isinstance(error.schema, dict) else {}
    declared = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    instance = error.instance if isinstance(error.instance, dict) else {}
    for key in _js_key_order(instance):
        if key not in declared and not any(re.search(p, key) for p in patterns):
            return key
    return ""


def _reason(error: ValidationError) -> str:
    keyword: Any = error.validator
    value: Any = error.validator_value
    if keyword is None or (keyword == "not" and value == FALSE_SCHEMA["not"]):
        return "boolean schema is false"
    if keyword == "required":
        instance = error.instance if isinstance(error.instance, dict) else {}
        missing = next((name for name in value if name not in instance), "")
        return f"must have required property '{missing}'"
    if keyword == "additionalProperties":
        return f"must NOT have additional properties: {_additional_property(error)}"
    if keyword == "type":
        return "must be " + (",".join(value) if isinstance(value, list) else str(value))
    if keyword == "enum":
        under = error.absolute_path and error.absolute_path[0] in ("actor", "target", "object")
        allowed = ", ".join(str(v) for v in value) if under else ""
        return "must be equal to one of the allowed values" + (f": {allowed}" if allowed else "")
    if keyword == "additionalItems":
        items = error.schema.get("items", []) if isinstance(error.schema, dict) else []
        return f"must NOT have more than {len(items)} items"
    templates = {
        "const": "must be equal to constant",
        "format": 'must match format "{}"',
        "pattern": 'must match pattern "{}"',
        "minimum": "must be >= {}",
        "maximum": "must be <= {}",
        "exclusiveMinimum": "must be > {}",
        "exclusiveMaximum": "must be < {}",
        "multipleOf": "must be multiple of {}",
        "minLength": "must NOT have fewer than {} characters",
        "maxLength": "must NOT have more than {} characters",
        "minItems": "must NOT have fewer than {} items",
        "maxItems": "must NOT have more than {} items",
        "minProperties": "must NOT have fewer than {} properties",
        "maxProperties": "must NOT have more than {} properties",
        "anyOf": "must match a schema in anyOf",
        "oneOf": "must match exactly one schema in oneOf",
        "not": "must NOT be valid",
        "uniqueItems": "must NOT have duplicate items",
        "contains": "must contain at least 1 valid item(s)",
    }
    template = templates.get(str(keyword))
    if template is None:
        return str(error.message)
    shown = value if isinstance(value, str) else _js_number(value)
    return template.format(shown)
