"""The codec a process builds from its settings: payload keys and, when configured,
a schema registry client that the codec owns and closes."""

from __future__ import annotations

from schemas.codec import Codec
from schemas.logcrypt import KeyRing
from sockethub.runtime.schema_registry import SchemaRegistryClient
from sockethub.runtime.settings import CommonSettings


def codec_from_settings(settings: CommonSettings) -> Codec:
    registry = (
        SchemaRegistryClient(settings.schema_registry_url) if settings.schema_registry_url else None
    )
    return Codec(
        KeyRing.from_secret(settings.log_keys), registry, owns_registry=registry is not None
    )
