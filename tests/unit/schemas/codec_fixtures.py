"""Codecs in every configuration the tests exercise (no network: the registry is preset)."""

from __future__ import annotations

import asyncio
import base64

from schemas.codec import Codec, load_schema
from schemas.logcrypt import KeyRing
from sockethub.runtime.schema_registry import SchemaRegistryClient

KEY_A = base64.b64encode(bytes(range(32))).decode()
KEY_B = base64.b64encode(bytes(range(100, 116))).decode()
KEYS = f"old:{KEY_A},new:{KEY_B}"
PRESET_IDS = {"request": 11, "result": 12, "event": 13}
PRESET_V1_IDS = {"request": 1, "result": 2, "event": 3}


def preset_registry() -> SchemaRegistryClient:
    schemas = {i: load_schema(kind) for kind, i in PRESET_IDS.items()}
    schemas.update({i: load_schema(kind, 1) for kind, i in PRESET_V1_IDS.items()})
    return SchemaRegistryClient.preset(schemas)


def started(codec: Codec) -> Codec:
    asyncio.run(codec.start())
    return codec


def codecs() -> dict[str, Codec]:
    return {
        "single-object": Codec(),
        "single-object+encrypted": Codec(KeyRing.parse(KEYS)),
        "confluent": started(Codec(registry=preset_registry())),
        "confluent+encrypted": started(Codec(KeyRing.parse(KEYS), preset_registry())),
    }
