"""The registry client against an in-process fake of the Confluent REST API."""

from __future__ import annotations

import json

import httpx
import pytest

from schemas.codec import Codec, load_schema
from schemas.envelopes import Request
from sockethub.runtime.schema_registry import SchemaRegistryClient, SchemaRegistryError, subject_for


class FakeRegistry:
    def __init__(self) -> None:
        self.schemas: dict[int, str] = {}
        self.subjects: dict[str, dict[str, int]] = {}
        self.calls: list[str] = []
        self.auth: list[str | None] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(f"{request.method} {request.url.path}")
        self.auth.append(request.headers.get("authorization"))
        parts = request.url.path.strip("/").split("/")
        if request.method == "GET" and parts[:2] == ["schemas", "ids"]:
            schema_id = int(parts[2])
            if schema_id not in self.schemas:
                return httpx.Response(
                    404, json={"error_code": 40403, "message": "Schema not found"}
                )
            return httpx.Response(200, json={"schema": self.schemas[schema_id]})
        text = json.loads(request.content)["schema"]
        canonical = json.dumps(json.loads(text), sort_keys=True)
        if parts[0] == "subjects" and len(parts) == 3:
            known = {json.dumps(json.loads(s), sort_keys=True): i for i, s in self.schemas.items()}
            schema_id = known.get(canonical) or len(self.schemas) + 100
            self.schemas[schema_id] = text
            self.subjects.setdefault(parts[1], {})[canonical] = schema_id
            return httpx.Response(200, json={"id": schema_id})
        if parts[0] == "subjects" and len(parts) == 2:
            found = self.subjects.get(parts[1], {}).get(canonical)
            if found is None:
                return httpx.Response(
                    404, json={"error_code": 40403, "message": "Schema not found"}
                )
            return httpx.Response(200, json={"id": found, "subject": parts[1], "version": 1})
        return httpx.Response(500, json={"message": "unexpected"})


def client(fake: FakeRegistry, url: str = "http://registry.test") -> SchemaRegistryClient:
    return SchemaRegistryClient(url, transport=httpx.MockTransport(fake))


async def test_register_lookup_and_fetch() -> None:
    fake = FakeRegistry()
    registry = client(fake)
    schema = load_schema("request")
    assert subject_for(schema) == "org.sockethub.v1.Request"
    schema_id = await registry.register(subject_for(schema), schema)
    assert await registry.register(subject_for(schema), schema) == schema_id
    assert fake.calls.count("POST /subjects/org.sockethub.v1.Request/versions") == 1
    assert await registry.lookup(subject_for(schema), load_schema("request", 1)) is None
    other = SchemaRegistryClient.preset({})
    assert other.cached(schema_id) is None
    fresh = client(fake)
    text = await fresh.get_schema(schema_id)
    assert json.loads(text) == schema
    await fresh.get_schema(schema_id)
    assert fake.calls.count(f"GET /schemas/ids/{schema_id}") == 1
    with pytest.raises(SchemaRegistryError, match="404"):
        await fresh.get_schema(999)


async def test_codec_against_registry() -> None:
    fake = FakeRegistry()
    writer = Codec(registry=client(fake))
    await writer.start()
    assert set(fake.subjects) == {
        "org.sockethub.v1.Request",
        "org.sockethub.v1.Result",
        "org.sockethub.v1.PlatformEvent",
    }
    record = Request("s", "r", "irc", "join", {"type": "join"})
    value = writer.encode(record)[0]
    assert value[0] == 0
    reader = Codec(registry=client(fake))
    assert await reader.decode_async(value) == record


async def test_credentials_in_url_become_basic_auth_and_stay_out_of_errors() -> None:
    fake = FakeRegistry()
    registry = client(fake, "http://user:s3cr3t-pass@registry.test")
    assert "s3cr3t" not in registry.url
    with pytest.raises(SchemaRegistryError) as caught:
        await registry.get_schema(5)
    assert "s3cr3t" not in str(caught.value)
    assert fake.auth[-1] is not None and fake.auth[-1].startswith("Basic ")


async def test_unreachable_registry() -> None:
    registry = SchemaRegistryClient("http://127.0.0.1:9", timeout=2.0)
    with pytest.raises(SchemaRegistryError, match="unreachable"):
        await registry.get_schema(1)
    await registry.close()
