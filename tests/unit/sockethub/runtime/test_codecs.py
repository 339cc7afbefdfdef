"""sockethub/runtime/codecs.py: the codec a process builds from its settings."""

from __future__ import annotations

import pytest

from schemas.codec import CodecError
from schemas.envelopes import Request
from schemas.registry import SchemaRegistryError
from sockethub.runtime.codecs import codec_from_settings
from sockethub.runtime.settings import CommonSettings
from tests.unit.schemas.test_logcrypt import KEY_A


def test_payload_keys_turn_encryption_on() -> None:
    assert codec_from_settings(CommonSettings(log_keys=f"a:{KEY_A}")).encrypting
    assert not codec_from_settings(CommonSettings(log_keys=None)).encrypting


async def test_a_registry_url_gives_a_codec_that_uses_the_registry() -> None:
    codec = codec_from_settings(
        CommonSettings(schema_registry_url="http://127.0.0.1:9", log_keys=None)
    )
    with pytest.raises(CodecError, match="start"):
        codec.encode(Request("s", "r", "irc", "join", {"type": "join"}))
    with pytest.raises(SchemaRegistryError, match="unreachable"):
        await codec.start()
    await codec.close()
