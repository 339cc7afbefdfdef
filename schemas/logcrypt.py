"""Payload encryption for records at rest in Kafka.

A ``KeyRing`` holds the AES keys named by ``SOCKETHUB_LOG_KEYS``
(``id:base64key,id:base64key``). The last key seals new payloads; every key
opens old ones, so a key can be rotated in by appending it and rotated out
once the topics' retention has expired everything it sealed.

Sealed bytes are ``nonce (12) + AES-GCM ciphertext and tag``. The associated
data binds the ciphertext to its record's routing fields, so a payload copied
into another record (another session, activity or platform), or a record whose
routing fields were altered, fails to open.

Binding revisions (the codec builds the associated data): revision 1 bound the
schema name, session id, record id, platform and verb. Revision 2, written
today, also binds the request kind and the reply route, and starts with the tag
``BINDING_V2``. Readers try revision 2 and fall back to revision 1, so records
sealed before the upgrade stay readable until retention expires them; a
revision-2 ciphertext never opens under revision-1 data (the tag differs), so
the fallback cannot be used to strip the new binding from a new record. No
schema field carries the revision: it would be unauthenticated anyway.

With a key ring, unsealed records are refused (``UnsealedRecordError``): anyone
who can write to a topic could otherwise inject plaintext records that no key
vouches for.

The codec's error types live here because decryption raises them too;
``schemas.codec`` re-exports them.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Iterable

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

NONCE_BYTES = 12
_TAG_BYTES = 16
_KEY_SIZES = (16, 24, 32)
_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
BINDING_V2 = "sockethub-seal-v2"
"""First item of revision-2 associated data; revision 1 started with a schema name."""


class CodecError(Exception):
    """A record could not be encoded or decoded."""


class MissingKeyError(CodecError):
    """A sealed payload names a key id that the key ring does not hold."""

    def __init__(self, key_id: str) -> None:
        super().__init__(f"payload sealed with key id {key_id!r}, which is not in the key ring")
        self.key_id = key_id


class DecryptionError(CodecError):
    """A sealed payload failed authentication (tampered, or moved to another record)."""


class UnsealedRecordError(CodecError):
    """A record carries its payload in clear although payload keys are set."""


class KeyRingError(ValueError):
    """The key ring specification is malformed. Messages never include key material."""


def associated_data(*parts: str | None) -> bytes:
    """Unambiguous encoding of the routing fields a ciphertext is bound to."""
    return orjson.dumps(parts)


class KeyRing:
    """AES-GCM keys by id; the last one added seals, all of them open."""

    __slots__ = ("_current", "_keys")

    def __init__(self, keys: Iterable[tuple[str, bytes]]) -> None:
        self._keys: dict[str, AESGCM] = {}
        current: str | None = None
        for position, (key_id, key) in enumerate(keys, start=1):
            if not _KEY_ID.fullmatch(key_id):
                raise KeyRingError(
                    f"key #{position}: key id must be 1-64 characters of A-Z a-z 0-9 . _ -"
                )
            if key_id in self._keys:
                raise KeyRingError(f"key id {key_id!r} appears more than once")
            if len(key) not in _KEY_SIZES:
                raise KeyRingError(
                    f"key {key_id!r} is {len(key)} bytes; AES keys are 16, 24 or 32 bytes"
                )
            self._keys[key_id] = AESGCM(key)
            current = key_id
        if current is None:
            raise KeyRingError("the key ring is empty")
        self._current = current

    @classmethod
    def parse(cls, spec: str) -> KeyRing:
        """Parse ``id:base64key,id:base64key`` (whitespace around items ignored)."""
        keys: list[tuple[str, bytes]] = []
        for position, item in enumerate(spec.split(","), start=1):
            item = item.strip()
            if not item:
                continue
            key_id, sep, encoded = item.partition(":")
            key_id = key_id.strip()
            if not sep or not key_id:
                raise KeyRingError(f"key #{position}: expected id:base64key")
            try:
                key = base64.b64decode(encoded.strip(), validate=True)
            except (binascii.Error, ValueError):
                raise KeyRingError(f"key {key_id!r}: the key is not valid base64") from None
            keys.append((key_id, key))
        return cls(keys)

    @classmethod
    def from_secret(cls, log_keys: SecretStr | None) -> KeyRing | None:
        """The ring named by ``SOCKETHUB_LOG_KEYS``, or None when it is unset or blank."""
        if log_keys is None or not log_keys.get_secret_value().strip():
            return None
        return cls.parse(log_keys.get_secret_value())

    @property
    def current_key_id(self) -> str:
        return self._current

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    def encrypt(self, plaintext: bytes, aad: bytes) -> tuple[str, bytes]:
        """Seal with the current key; returns (key id, nonce + ciphertext)."""
        nonce = os.urandom(NONCE_BYTES)
        return self._current, nonce + self._keys[self._current].encrypt(nonce, plaintext, aad)

    def decrypt(self, key_id: str, sealed: bytes, aad: bytes) -> bytes:
        aead = self._keys.get(key_id)
        if aead is None:
            raise MissingKeyError(key_id)
        if len(sealed) < NONCE_BYTES + _TAG_BYTES:
            raise DecryptionError(f"sealed payload (key id {key_id!r}) is truncated")
        try:
            return aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
        except InvalidTag:
            raise DecryptionError(
                f"sealed payload (key id {key_id!r}) failed authentication: "
                "tampered, or its routing fields do not match"
            ) from None

    def __repr__(self) -> str:
        return f"KeyRing(key_ids={list(self._keys)!r}, current={self._current!r})"
