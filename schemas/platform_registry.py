"""The platforms this gateway serves, and the JSON Schemas clients validate against.

A platform descriptor names its verbs and gives two schema *fragments*
(``credentials`` and ``messages``): the platform's ``object`` rules, plus any
extra required top-level keys. The registry composes each fragment with the
shared envelope (``schemas/activity/base.json``), the platform's context URL
and its verb enum into a standalone draft-07 schema: the same schema is sent to
clients in the ``schemas`` ack (they compile it with AJV 8) and used here.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import metadata, resources
from typing import Any, Literal

import fastjsonschema
from jsonschema import Draft7Validator, FormatChecker

JSONDict = dict[str, Any]
SchemaKind = Literal["messages", "credentials"]
FastCheck = Callable[[object], bool]

AS_CONTEXT_URL = "https://www.w3.org/ns/activitystreams"
SOCKETHUB_CONTEXT_URL = "https://sockethub.org/ns/context/v1.jsonld"
BASE_CONTEXT_URLS = (AS_CONTEXT_URL, SOCKETHUB_CONTEXT_URL)
CONTEXT_VERSION = "1"
ENTRY_POINT_GROUP = "sockethub.platform_schemas"
BUILTIN_PLATFORMS = ("dummy", "feeds", "metadata", "irc", "xmpp", "caldav", "carddav")
DUMMY_FAULT_VERBS = ("hang", "exit1", "sigkill")
"""The dummy platform's verbs that stall or crash its runner: only where faults are wanted."""

_PLATFORM_ID = re.compile(r"[a-z0-9][a-z0-9_.-]*", re.ASCII)
_FRAGMENT_KEYS = frozenset({"properties", "required", "definitions", "description"})


def context_url(platform_id: str) -> str:
    return f"https://sockethub.org/ns/context/platform/{platform_id}/v1.jsonld"


def canonical_context(platform_id: str) -> list[str]:
    return [AS_CONTEXT_URL, SOCKETHUB_CONTEXT_URL, context_url(platform_id)]


def canonical_json(value: object) -> bytes:
    """Sorted keys, no spaces, UTF-8: the bytes the registry fingerprint hashes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# --- formats, as ajv-formats 3 ("full" mode) checks them ------------------------------------

# JavaScript's \s, spelled out: Python's differs outside ASCII.
_JS_SPACE = "\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_DATE = re.compile(r"(\d\d\d\d)-(\d\d)-(\d\d)", re.ASCII)
_TIME = re.compile(r"(\d\d):(\d\d):(\d\d(?:\.\d+)?)(z|([+-])(\d\d)(?::?(\d\d))?)?", re.I | re.A)
_DATE_TIME_SEPARATOR = re.compile(f"[tT{_JS_SPACE}]")
_DAYS = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_URI = re.compile(
    r"(?:[a-z][a-z0-9+\-.]*:)(?:\/?\/(?:(?:[a-z0-9\-._~!$&'()*+,;=:]|%[0-9a-f]{2})*@)?(?:\[(?:(?:(?:"
    r"(?:[0-9a-f]{1,4}:){6}|::(?:[0-9a-f]{1,4}:){5}|(?:[0-9a-f]{1,4})?::(?:[0-9a-f]{1,4}:){4}|(?:(?:"
    r"[0-9a-f]{1,4}:){0,1}[0-9a-f]{1,4})?::(?:[0-9a-f]{1,4}:){3}|(?:(?:[0-9a-f]{1,4}:){0,2}[0-9a-f]"
    r"{1,4})?::(?:[0-9a-f]{1,4}:){2}|(?:(?:[0-9a-f]{1,4}:){0,3}[0-9a-f]{1,4})?::[0-9a-f]{1,4}:|(?:(?:"
    r"[0-9a-f]{1,4}:){0,4}[0-9a-f]{1,4})?::)(?:[0-9a-f]{1,4}:[0-9a-f]{1,4}|(?:(?:25[0-5]|2[0-4]\d|"
    r"[01]?\d\d?)\.){3}(?:25[0-5]|2[0-4]\d|[01]?\d\d?))|(?:(?:[0-9a-f]{1,4}:){0,5}[0-9a-f]{1,4})?::"
    r"[0-9a-f]{1,4}|(?:(?:[0-9a-f]{1,4}:){0,6}[0-9a-f]{1,4})?::)|[Vv][0-9a-f]+\.[a-z0-9\-._~!$&'()*+"
    r",;=:]+)\]|(?:(?:25[0-5]|2[0-4]\d|[01]?\d\d?)\.){3}(?:25[0-5]|2[0-4]\d|[01]?\d\d?)|(?:[a-z0-9"
    r"\-._~!$&'()*+,;=]|%[0-9a-f]{2})*)(?::\d*)?(?:\/(?:[a-z0-9\-._~!$&'()*+,;=:@]|%[0-9a-f]{2})*)*|"
    r"\/(?:(?:[a-z0-9\-._~!$&'()*+,;=:@]|%[0-9a-f]{2})+(?:\/(?:[a-z0-9\-._~!$&'()*+,;=:@]|%[0-9a-f]"
    r"{2})*)*)?|(?:[a-z0-9\-._~!$&'()*+,;=:@]|%[0-9a-f]{2})+(?:\/(?:[a-z0-9\-._~!$&'()*+,;=:@]|%[0-9"
    r"a-f]{2})*)*)(?:\?(?:[a-z0-9\-._~!$&'()*+,;=:@/?]|%[0-9a-f]{2})*)?(?:#(?:[a-z0-9\-._~!$&'()*+,"
    r";=:@/?]|%[0-9a-f]{2})*)?",
    re.IGNORECASE | re.ASCII,
)


def _is_date(text: str) -> bool:
    match = _DATE.fullmatch(text)
    if not match:
        return False
    year, month, day = (int(part) for part in match.groups())
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    return 1 <= month <= 12 and 1 <= day <= (29 if month == 2 and leap else _DAYS[month])


def _is_time(text: str) -> bool:
    match = _TIME.fullmatch(text)
    if not match or not match.group(4):
        return False
    hour, minute, second = int(match.group(1)), int(match.group(2)), float(match.group(3))
    sign = -1 if match.group(5) == "-" else 1
    tz_hour, tz_minute = int(match.group(6) or 0), int(match.group(7) or 0)
    if tz_hour > 23 or tz_minute > 59:
        return False
    if hour <= 23 and minute <= 59 and second < 60:
        return True
    utc_minute = minute - tz_minute * sign
    utc_hour = hour - tz_hour * sign - (1 if utc_minute < 0 else 0)
    return utc_hour in (23, -1) and utc_minute in (59, -1) and second < 61


def is_date_time(value: object) -> bool:
    """RFC 3339 date-time with a mandatory offset, exactly as ajv-formats decides it."""
    if not isinstance(value, str):
        return True
    parts = _DATE_TIME_SEPARATOR.split(value)
    return len(parts) == 2 and _is_date(parts[0]) and _is_time(parts[1])


def is_uri(value: object) -> bool:
    """An absolute URI, exactly as ajv-formats decides it."""
    if not isinstance(value, str):
        return True
    return ("/" in value or ":" in value) and _URI.fullmatch(value) is not None


FORMAT_CHECKER = FormatChecker(formats=())
FORMAT_CHECKER.checks("date-time")(is_date_time)
FORMAT_CHECKER.checks("uri")(is_uri)
FAST_FORMATS: dict[str, Callable[[object], bool]] = {"date-time": is_date_time, "uri": is_uri}
"""The same format checks for the compiled (fastjsonschema) validators."""


def compile_fast_check(schema: JSONDict) -> FastCheck | None:
    """A yes/no validator compiled with fastjsonschema, or None if it cannot compile it.

    It only answers "valid or not": a "not" is then explained by the jsonschema
    validator, which alone renders the error texts. fastjsonschema knows more
    formats than :data:`FORMAT_CHECKER` checks (``email``, ``hostname``...), so it
    may refuse what jsonschema accepts (the jsonschema pass then accepts it), never
    the other way round; ``use_default=False`` keeps it from filling in defaults.

    A top-level property's ``oneOf`` whose branches are told apart by ``type`` (see
    :func:`_type_dispatch`) is checked by picking the one branch the value's ``type``
    names: fastjsonschema would try every branch and raise and catch an exception in
    each failed one, so most of a check would go to branches that cannot match.
    """
    stripped, dispatch = _type_dispatch(schema)
    try:
        # detailed_exceptions=False cannot compile "const" (KeyError in fastjsonschema 2.22).
        compiled = fastjsonschema.compile(stripped, formats=FAST_FORMATS, use_default=False)
        definitions = schema.get("definitions")
        branches: dict[int, Callable[[object], object]] = {}
        tables: list[tuple[str, dict[str, Callable[[object], object]]]] = []
        for name, by_type in dispatch.items():
            table = {}
            for value, branch in by_type.items():
                if id(branch) not in branches:
                    rooted = {**branch, "definitions": definitions} if definitions else branch
                    branches[id(branch)] = fastjsonschema.compile(
                        rooted, formats=FAST_FORMATS, use_default=False
                    )
                table[value] = branches[id(branch)]
            tables.append((name, table))
    except Exception:
        return None

    def check(instance: object) -> bool:
        try:
            compiled(instance)
            for name, table in tables:
                if name in instance:  # type: ignore[operator]
                    value = instance[name]  # type: ignore[index]
                    table[value["type"]](value)
        except Exception:  # a failed check, or a value without a branch for its type
            return False
        return True

    return check


def _type_dispatch(schema: JSONDict) -> tuple[JSONDict, dict[str, dict[str, JSONDict]]]:
    """``schema`` without the ``oneOf`` of those top-level properties whose branches are
    each an object that requires ``type`` and allows only its own strings there (an
    ``enum``/``const``, no string in two branches); and for each such property, the
    branch of every ``type`` string.

    For those, "exactly one branch matches" is "the value is an object whose ``type``
    is one of the strings, and the branch of that string matches": any other branch
    fails on ``type``, and an object without ``type``, or with another one, fails them all.
    """
    properties = schema.get("properties")
    if schema.get("type") != "object" or not isinstance(properties, dict):
        return schema, {}
    kept = dict(properties)
    dispatch: dict[str, dict[str, JSONDict]] = {}
    for name, sub in properties.items():
        if not isinstance(sub, dict) or not isinstance(sub.get("oneOf"), list):
            continue
        by_type: dict[str, JSONDict] = {}
        for raw in sub["oneOf"]:
            branch = _local_ref(raw, schema)
            strings = _type_strings(branch)
            if strings is None or any(value in by_type for value in strings):
                break
            by_type.update(dict.fromkeys(strings, branch))
        else:
            if by_type:
                kept[name] = {k: v for k, v in sub.items() if k != "oneOf"}
                dispatch[name] = by_type
    if not dispatch:
        return schema, {}
    return {**schema, "properties": kept}, dispatch


def _local_ref(schema: Any, root: JSONDict) -> Any:
    """``#/definitions/<name>`` resolved (once); anything else as it is."""
    if isinstance(schema, dict) and set(schema) == {"$ref"}:
        ref = schema["$ref"]
        prefix = "#/definitions/"
        definitions = root.get("definitions")
        if isinstance(ref, str) and ref.startswith(prefix) and isinstance(definitions, dict):
            return definitions.get(ref[len(prefix) :], schema)
    return schema


def _type_strings(branch: Any) -> list[str] | None:
    """The strings a branch allows as ``type``, if it is an object that requires ``type``."""
    if not isinstance(branch, dict) or branch.get("type") != "object":
        return None
    required = branch.get("required")
    rule = (branch.get("properties") or {}).get("type")
    if not isinstance(required, list) or "type" not in required or not isinstance(rule, dict):
        return None
    values = rule.get("enum", [rule["const"]] if "const" in rule else None)
    if not isinstance(values, list) or not values or set(rule) - {"enum", "const", "title"}:
        return None
    if not all(type(value) is str for value in values):
        return None
    return list(dict.fromkeys(values))


FALSE_SCHEMA: JSONDict = {"not": {}}
_SUBSCHEMA_MAPS = ("properties", "patternProperties", "definitions")
_SUBSCHEMA_LISTS = ("items", "allOf", "anyOf", "oneOf")
_SUBSCHEMAS = ("items", "not", "if", "then", "else", "contains", "propertyNames")


def without_false_subschemas(schema: Any) -> Any:
    """The schema with ``false`` subschemas spelled ``{"not": {}}``.

    jsonschema loses the instance path of an error raised by a ``false``
    subschema (``properties: {"object": false}`` reports the parent), so the
    Python validators get this equivalent form; clients get the original.
    """
    if schema is False:
        return copy.deepcopy(FALSE_SCHEMA)
    if not isinstance(schema, dict):
        return schema
    result = dict(schema)
    for key in _SUBSCHEMA_MAPS:
        if isinstance(schema.get(key), dict):
            result[key] = {k: without_false_subschemas(v) for k, v in schema[key].items()}
    for key in _SUBSCHEMA_LISTS:
        if isinstance(schema.get(key), list):
            result[key] = [without_false_subschemas(v) for v in schema[key]]
    for key in _SUBSCHEMAS:
        if isinstance(schema.get(key), dict) or schema.get(key) is False:
            result[key] = without_false_subschemas(schema[key])
    return result


# --- descriptors ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlatformDescriptor:
    """A platform as the gateway sees it; the schemas are the composed, standalone ones."""

    id: str
    version: str
    persistent: bool
    verbs: tuple[str, ...]
    credentials_schema: JSONDict | None
    messages_schema: JSONDict
    context_url: str
    schema_version: str = "1"


@cache
def base_envelope() -> JSONDict:
    text = resources.files("schemas").joinpath("activity", "base.json").read_text("utf-8")
    envelope: JSONDict = json.loads(text)
    return envelope


def _builtin_descriptor(platform_id: str, *, dummy_faults: bool = False) -> JSONDict:
    path = resources.files("schemas").joinpath("platforms", f"{platform_id}.json")
    raw: JSONDict = json.loads(path.read_text("utf-8"))
    if platform_id == "dummy" and dummy_faults:
        raw["verbs"] = [*raw["verbs"], *DUMMY_FAULT_VERBS]
    return raw


def compose_schema(
    fragment: Mapping[str, Any], platform_url: str, type_schema: JSONDict
) -> JSONDict:
    """The base envelope with the platform's @context, verb rule and fragment filled in."""
    unknown = set(fragment) - _FRAGMENT_KEYS
    if unknown:
        raise ValueError(f"schema fragment has unsupported keys: {sorted(unknown)}")
    schema = copy.deepcopy(base_envelope())
    properties: JSONDict = schema["properties"]
    properties["@context"]["items"][2] = {"const": platform_url}
    properties["type"] = type_schema
    for key, rule in dict(fragment.get("properties", {})).items():
        if key not in properties:
            raise ValueError(f"schema fragment defines a top-level key the envelope forbids: {key}")
        properties[key] = copy.deepcopy(rule)
    for key in fragment.get("required", []):
        if key not in schema["required"]:
            schema["required"].append(key)
    definitions: JSONDict = schema["definitions"]
    for name, definition in dict(fragment.get("definitions", {})).items():
        if name in definitions:
            raise ValueError(f"schema fragment redefines envelope definition: {name}")
        definitions[name] = copy.deepcopy(definition)
    if "description" in fragment:
        schema["description"] = fragment["description"]
    Draft7Validator.check_schema(schema)
    return schema


def parse_descriptor(raw: object, *, source: str) -> PlatformDescriptor:
    """Check a descriptor dict's shape and compose its schemas; ``ValueError`` if malformed."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"{source}: a platform descriptor must be an object")
    pid = raw.get("id")
    if not isinstance(pid, str) or not _PLATFORM_ID.fullmatch(pid):
        raise ValueError(f"{source}: descriptor id must match {_PLATFORM_ID.pattern}")
    version, persistent, verbs = raw.get("version"), raw.get("persistent"), raw.get("verbs")
    if not isinstance(version, str) or not isinstance(persistent, bool):
        raise ValueError(f"{source}: descriptor needs a string version and a bool persistent")
    if (
        not isinstance(verbs, list)
        or not verbs
        or not all(isinstance(verb, str) and verb for verb in verbs)
        or len(set(verbs)) != len(verbs)
    ):
        raise ValueError(f"{source}: verbs must be a non-empty list of distinct strings")
    fragments = raw.get("schemas")
    if not isinstance(fragments, Mapping) or not isinstance(fragments.get("messages"), Mapping):
        raise ValueError(f"{source}: descriptor needs schemas.messages")
    credentials = fragments.get("credentials")
    if credentials is not None and not isinstance(credentials, Mapping):
        raise ValueError(f"{source}: schemas.credentials must be an object")
    if (credentials is not None) != ("credentials" in verbs):
        raise ValueError(f"{source}: a credentials schema goes with a credentials verb")
    schema_version = raw.get("schemaVersion", "1")
    if not isinstance(schema_version, str):
        raise ValueError(f"{source}: schemaVersion must be a string")
    url = context_url(pid)
    message_verbs = [verb for verb in verbs if verb != "credentials"]
    messages = compose_schema(fragments["messages"], url, {"type": "string", "enum": message_verbs})
    credentials_schema = (
        None
        if credentials is None
        else compose_schema(credentials, url, {"type": "string", "enum": ["credentials"]})
    )
    return PlatformDescriptor(
        id=pid,
        version=version,
        persistent=persistent,
        verbs=tuple(verbs),
        credentials_schema=credentials_schema,
        messages_schema=messages,
        context_url=url,
        schema_version=schema_version,
    )


def _entry_point_descriptors(wanted: set[str]) -> dict[str, object]:
    """Raw descriptors from installed packages, loading only the enabled ones."""
    found: dict[str, object] = {}
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry_point.name not in wanted:
            continue
        if entry_point.name in found:
            raise ValueError(f"platform {entry_point.name} has more than one schema entry point")
        loaded: object = entry_point.load()
        if callable(loaded):
            loaded = loaded()
        found[entry_point.name] = loaded
    return found


def _server_version() -> str:
    try:
        return metadata.version("sockethub-kafka")
    except metadata.PackageNotFoundError:
        return "0.0.0"


class PlatformRegistry:
    """The enabled platforms: descriptors, compiled validators and the ``schemas`` ack.

    Third-party packages add platforms through the ``sockethub.platform_schemas``
    entry point group: the entry point's name is the platform id, and it loads
    to a descriptor dict or a callable returning one. An entry point with a
    built-in's name replaces the built-in.
    """

    def __init__(
        self,
        enabled: Iterable[str],
        *,
        server_version: str | None = None,
        dummy_faults: bool = False,
    ) -> None:
        """``dummy_faults`` adds :data:`DUMMY_FAULT_VERBS` to the built-in dummy platform."""
        ids = list(dict.fromkeys(enabled))
        third_party = _entry_point_descriptors(set(ids))
        self._platforms: dict[str, PlatformDescriptor] = {}
        for pid in ids:
            if pid in third_party:
                source = f"entry point {ENTRY_POINT_GROUP}:{pid}"
                descriptor = parse_descriptor(third_party[pid], source=source)
            elif pid in BUILTIN_PLATFORMS:
                raw = _builtin_descriptor(pid, dummy_faults=dummy_faults)
                descriptor = parse_descriptor(raw, source=f"{pid}.json")
            else:
                raise ValueError(f"platform {pid} is enabled but has no schema descriptor")
            if descriptor.id != pid:
                raise ValueError(f"descriptor for platform {pid} declares id {descriptor.id}")
            self._platforms[pid] = descriptor
        self._by_url = {d.context_url: d for d in self._platforms.values()}
        self._validators: dict[tuple[str, SchemaKind], Draft7Validator] = {}
        self._fast: dict[tuple[str, SchemaKind], FastCheck | None] = {}
        self.server_version = server_version if server_version is not None else _server_version()
        self._payloads: dict[str, JSONDict] = {}

    def get(self, platform_id: str) -> PlatformDescriptor | None:
        return self._platforms.get(platform_id)

    def by_context_url(self, url: str) -> PlatformDescriptor | None:
        return self._by_url.get(url)

    def ids(self) -> tuple[str, ...]:
        return tuple(self._platforms)

    def validator(self, platform_id: str, kind: SchemaKind) -> Draft7Validator | None:
        """The compiled validator for a platform's schema, or None if it has none."""
        key = (platform_id, kind)
        cached = self._validators.get(key)
        if cached is not None:
            return cached
        descriptor = self._platforms.get(platform_id)
        if descriptor is None:
            return None
        schema = descriptor.messages_schema if kind == "messages" else descriptor.credentials_schema
        if schema is None:
            return None
        compiled = Draft7Validator(without_false_subschemas(schema), format_checker=FORMAT_CHECKER)
        self._validators[key] = compiled
        return compiled

    def fast_check(self, platform_id: str, kind: SchemaKind) -> FastCheck | None:
        """A compiled yes/no check of the same schema as :meth:`validator` (None: none).

        True means the jsonschema validator would find no error; False means it
        may: ask it for the error.
        """
        key = (platform_id, kind)
        if key in self._fast:
            return self._fast[key]
        descriptor = self._platforms.get(platform_id)
        schema = None
        if descriptor is not None:
            schema = (
                descriptor.messages_schema if kind == "messages" else descriptor.credentials_schema
            )
        compiled = None if schema is None else compile_fast_check(without_false_subschemas(schema))
        self._fast[key] = compiled
        return compiled

    def payload(self, server_version: str | None = None) -> JSONDict:
        """The ``schemas`` ack (spec section 5); a fresh copy on every call."""
        version = self.server_version if server_version is None else server_version
        cached = self._payloads.get(version)
        if cached is None:
            cached = self._build_payload(version)
            self._payloads[version] = cached
        return copy.deepcopy(cached)

    @property
    def fingerprint(self) -> str:
        return str(self.payload()["fingerprint"])

    def schemas_ack(self, client_fingerprint: object = None) -> JSONDict:
        """The ``schemas`` ack: the registry, or "unchanged" when the fingerprint matches."""
        fingerprint = self.fingerprint
        if isinstance(client_fingerprint, str) and client_fingerprint == fingerprint:
            return {"fingerprint": fingerprint, "unchanged": True}
        return self.payload()

    def _build_payload(self, server_version: str) -> JSONDict:
        platforms = []
        for d in self._platforms.values():
            schemas: JSONDict = {"messages": d.messages_schema}
            if d.credentials_schema is not None:
                schemas = {"credentials": d.credentials_schema, **schemas}
            platforms.append(
                {
                    "id": d.id,
                    "version": d.version,
                    "contextUrl": d.context_url,
                    "contextVersion": CONTEXT_VERSION,
                    "schemaVersion": d.schema_version,
                    "types": list(d.verbs),
                    "schemas": schemas,
                }
            )
        body: JSONDict = {
            "version": server_version,
            "contexts": {"as": AS_CONTEXT_URL, "sockethub": SOCKETHUB_CONTEXT_URL},
            "platforms": platforms,
        }
        digest = hashlib.sha256(canonical_json(body)).hexdigest()[:16]
        return {"fingerprint": digest, **copy.deepcopy(body)}
