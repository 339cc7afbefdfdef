"""The schemas compile in the real AJV 8 (as clients compile them) and judge like ours do.

Needs Node and ``tests/js/node_modules`` (``make test`` runs ``npm ci --prefix tests/js``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from gateway.validation import ActivityError, validate_credentials, validate_message
from schemas.platform_registry import (
    BUILTIN_PLATFORMS,
    PlatformRegistry,
    base_envelope,
    canonical_context,
)

JS_DIR = Path(__file__).resolve().parents[2] / "js"
REGISTRY = PlatformRegistry(BUILTIN_PLATFORMS, server_version="1.2.3")
PERSON = {"id": "alice@irc.example.org", "type": "person"}
FEED = {"id": "https://news.example/feed.xml", "type": "feed"}
SITE = {"id": "https://news.example/", "type": "website"}
IRC_CREDENTIALS = {"type": "credentials", "nick": "alice", "server": "irc.example.org"}


def act(platform: str, verb: str, actor: dict[str, Any] = PERSON, **fields: Any) -> dict[str, Any]:
    return {"@context": canonical_context(platform), "type": verb, "actor": actor, **fields}


# (schema name, activity); each is judged by AJV and by our validator.
SAMPLES: list[tuple[str, dict[str, Any]]] = [
    ("dummy/messages", act("dummy", "echo", object={"type": "message", "content": "hi"})),
    ("dummy/messages", act("dummy", "greet", id="c1", published="2026-08-01T10:00:00Z")),
    ("dummy/messages", act("dummy", "fetch")),
    ("dummy/messages", act("dummy", "echo", foo=1)),
    ("dummy/messages", act("dummy", "echo", {"id": "x", "type": "foo"})),
    ("dummy/messages", act("dummy", "echo", {"type": "person"})),
    ("dummy/messages", act("dummy", "echo", {"id": "bot", "type": "platform"})),
    ("dummy/messages", act("dummy", "echo", published="2026-08-01T10:00:00")),
    ("dummy/messages", act("dummy", "echo", target={"id": "x", "type": "addressBook"})),
    ("dummy/messages", act("dummy", "echo", target={"id": "x", "type": "planet"})),
    ("dummy/messages", {**act("dummy", "echo"), "@context": canonical_context("dummy")[::-1]}),
    ("dummy/credentials", act("dummy", "credentials", object={"type": "credentials"})),
    ("feeds/messages", act("feeds", "fetch", FEED)),
    ("feeds/messages", act("feeds", "fetch", FEED, object={"since": "2026-01-01T00:00:00Z"})),
    ("feeds/messages", act("feeds", "fetch", FEED, object={"limit": 5})),
    ("feeds/messages", act("feeds", "fetch", FEED, object={"bogus": 1})),
    ("feeds/messages", act("feeds", "fetch", FEED, object={"limit": 0})),
    ("feeds/messages", act("feeds", "fetch", FEED, object={"since": "2026-13-01T00:00:00Z"})),
    ("feeds/messages", act("feeds", "fetch", {"id": "news.example/feed", "type": "feed"})),
    ("metadata/messages", act("metadata", "fetch", SITE)),
    ("metadata/messages", act("metadata", "fetch", SITE, object={})),
    ("metadata/messages", act("metadata", "fetch", {"id": "nope", "type": "website"})),
    ("irc/messages", act("irc", "send", object={"type": "message", "content": "hi"})),
    ("irc/messages", act("irc", "update", object={"type": "topic", "content": "goats"})),
    ("irc/messages", act("irc", "update", object={"type": "address"})),
    ("irc/messages", act("irc", "query", object={"type": "attendance"})),
    ("irc/messages", act("irc", "send", object={"type": "message"})),
    ("irc/messages", act("irc", "send", object={"content": "hi"})),
    ("irc/messages", act("irc", "credentials", object=IRC_CREDENTIALS)),
    ("irc/credentials", act("irc", "credentials", object=IRC_CREDENTIALS)),
    (
        "irc/credentials",
        act("irc", "credentials", object={**IRC_CREDENTIALS, "sasl": True, "token": "t"}),
    ),
    ("irc/credentials", act("irc", "credentials", object={**IRC_CREDENTIALS, "port": 0})),
    (
        "irc/credentials",
        act("irc", "credentials", object={**IRC_CREDENTIALS, "password": "p", "token": "t"}),
    ),
    ("irc/credentials", act("irc", "credentials", object={"type": "credentials"})),
    ("xmpp/messages", act("xmpp", "update", object={"type": "presence", "presence": "away"})),
    ("xmpp/messages", act("xmpp", "update", object={"type": "presence", "presence": "afk"})),
    ("xmpp/messages", act("xmpp", "query", object={"type": "room-info"})),
    ("xmpp/messages", act("xmpp", "make-friend", target={"id": "bob@x", "type": "person"})),
    (
        "xmpp/credentials",
        act(
            "xmpp",
            "credentials",
            object={
                "type": "credentials",
                "userAddress": "alice@example.org",
                "password": "pw",
                "resource": "laptop",
                "port": 5222,
            },
        ),
    ),
    ("xmpp/credentials", act("xmpp", "credentials", object={"type": "credentials"})),
]


def all_schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = {"base": base_envelope()}
    for platform in REGISTRY.payload()["platforms"]:
        for kind, schema in platform["schemas"].items():
            schemas[f"{platform['id']}/{kind}"] = schema
    return schemas


@pytest.fixture(scope="module")
def ajv() -> dict[str, Any]:
    if not (JS_DIR / "node_modules" / "ajv" / "package.json").is_file():
        pytest.fail(
            f"{JS_DIR / 'node_modules'} is missing: run `make test` (npm ci --prefix tests/js)"
        )
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH: the AJV check needs Node 18 or later")
    request = {
        "schemas": all_schemas(),
        "samples": [{"schema": name, "data": data} for name, data in SAMPLES],
    }
    done = subprocess.run(
        [node, str(JS_DIR / "compile_schemas.mjs")],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_ajv_is_version_8(ajv: dict[str, Any]) -> None:
    assert ajv["ajv"].startswith("8.")


@pytest.mark.parametrize("mode", ["sockethub", "strict"])
def test_every_schema_compiles_without_warnings(ajv: dict[str, Any], mode: str) -> None:
    compiled = ajv["compiled"][mode]
    assert set(compiled) == set(all_schemas())
    failures = {name: r for name, r in compiled.items() if not r["ok"] or r["warnings"]}
    assert failures == {}


def python_verdict(schema_name: str, data: dict[str, Any]) -> str | None:
    """None when valid, else the schema failure text without the ``[platform] `` prefix."""
    check = validate_credentials if schema_name.endswith("/credentials") else validate_message
    platform = schema_name.split("/")[0]
    try:
        check(data, REGISTRY)
    except ActivityError as error:
        prefix = f"[{platform}] "
        assert error.message.startswith(prefix), error.message
        return error.message.removeprefix(prefix)
    return None


@pytest.mark.parametrize(("index", "sample"), list(enumerate(SAMPLES)))
def test_ajv_and_python_agree(
    ajv: dict[str, Any], index: int, sample: tuple[str, dict[str, Any]]
) -> None:
    schema_name, data = sample
    verdict = ajv["samples"][index]
    ours = python_verdict(schema_name, data)
    assert verdict["valid"] is (ours is None), (ours, verdict["errors"])
    if ours is not None:
        # Our text is one of AJV's errors, sometimes with a detail Sockethub appends.
        rendered = [
            f"{e['instancePath'] or 'activity stream'}: {e['message']}" for e in verdict["errors"]
        ]
        assert any(ours.startswith(text) for text in rendered), (ours, rendered)
