"""The credential store, shared by the gateway (writes) and the runners (reads).

Credentials never travel on Kafka and are never logged. They live in Redis,
encrypted with AES-GCM under a key that is specific to one session:

    key = HKDF-SHA256(ikm=server secret, salt=session secret, info=label + session id)

The server secret (``SOCKETHUB_SECRET``) is shared by gateways and runners; the
session secret is random, kept in Redis beside the ciphertexts and dies with
the session. Reading Redis alone is not enough to decrypt, and a ciphertext
moved to another session, platform or actor fails authentication, because
session, platform and actor id are the associated data.

Every key slides: each read or write pushes its expiry to ``ttl`` seconds out.
When a session ends, :meth:`CredentialStore.end_session` shortens the expiry to
the grace period (persistent platforms keep their connection that long for a
page refresh) and further reads stop extending it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import SecretStr
from redis.asyncio import Redis

JSONDict = dict[str, Any]

_KEY_LABEL = b"sockethub credentials v1\x00"
_SHARE_LABEL = b"sockethub credential share v1\x00"
_NONCE_BYTES = 12
_SESSION_SECRET_BYTES = 32
SECRET_FIELDS = frozenset({"password", "token"})


class CredentialError(Exception):
    """Stored credentials exist but cannot be decrypted (tampered, moved or wrong secret)."""


def _secret_bytes(secret: SecretStr | str | bytes | None) -> bytes:
    if secret is None:
        raise ValueError("SOCKETHUB_SECRET must be set: it protects credentials in Redis")
    if isinstance(secret, SecretStr):
        secret = secret.get_secret_value()
    raw = secret.encode() if isinstance(secret, str) else secret
    if len(raw) < 16:
        raise ValueError("SOCKETHUB_SECRET must be at least 16 characters long")
    return raw


def derive_key(server_secret: bytes, session_secret: bytes, session_id: str) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=session_secret,
        info=_KEY_LABEL + session_id.encode(),
    ).derive(server_secret)


def associated_data(session_id: str, platform: str, actor_id: str) -> bytes:
    """Length-prefixed, so no two (session, platform, actor) triples share bytes."""
    parts = [p.encode() for p in (session_id, platform, actor_id)]
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)


def encrypt(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(_NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def decrypt(key: bytes, blob: bytes, aad: bytes) -> bytes:
    if len(blob) < _NONCE_BYTES + 16:
        raise CredentialError("stored credentials are truncated")
    try:
        return AESGCM(key).decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], aad)
    except InvalidTag:
        raise CredentialError("stored credentials failed authentication") from None


def share_key(
    secret: SecretStr | str | bytes | None,
    platform: str,
    actor_id: str,
    credentials: Mapping[str, Any],
) -> str | None:
    """A stable, keyed hash of credentials that carry a password or token, else None.

    Persistent platforms share one connection between sessions whose
    credentials hash alike (spec section 4); without a secret-bearing field the
    connection stays private to its session, so this returns None. The hash is
    an HMAC under the server secret: it identifies equal credentials without
    letting anyone test password guesses against it.
    """
    obj = credentials.get("object", credentials)
    if not isinstance(obj, Mapping) or not any(obj.get(field) for field in SECRET_FIELDS):
        return None
    body = json.dumps(
        {"platform": platform, "actor": actor_id, "object": obj},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
    mac = hmac.new(_secret_bytes(secret), _SHARE_LABEL + body, hashlib.sha256)
    return mac.hexdigest()


class CredentialStore:
    """Encrypted, per-session credentials in Redis (a client without ``decode_responses``)."""

    def __init__(
        self,
        redis: Redis,
        secret: SecretStr | str | bytes | None,
        *,
        prefix: str = "sockethub",
        ttl: int = 3600,
    ) -> None:
        self._redis = redis
        self._secret = _secret_bytes(secret)
        self._prefix = f"{prefix}:creds"
        self._ttl = ttl

    # Key layout: everything of one session shares a hash tag, for Redis Cluster.
    def _session_secret_key(self, session_id: str) -> str:
        return f"{self._prefix}:{{{session_id}}}:secret"

    def _index_key(self, session_id: str) -> str:
        return f"{self._prefix}:{{{session_id}}}:index"

    def _closed_key(self, session_id: str) -> str:
        return f"{self._prefix}:{{{session_id}}}:closed"

    def _item_key(self, session_id: str, platform: str, actor_id: str) -> str:
        digest = hashlib.sha256(associated_data(session_id, platform, actor_id)).hexdigest()[:32]
        return f"{self._prefix}:{{{session_id}}}:item:{digest}"

    async def _session_secret(self, session_id: str, *, create: bool) -> bytes | None:
        key = self._session_secret_key(session_id)
        if create:
            # SET NX: concurrent writers of one session agree on a single secret.
            await self._redis.set(key, os.urandom(_SESSION_SECRET_BYTES), nx=True, ex=self._ttl)
        value = await self._redis.get(key)
        return _bytes(value) if value is not None else None

    async def put(
        self, session_id: str, platform: str, actor_id: str, credentials: Mapping[str, Any]
    ) -> None:
        """Store (or replace) one actor's credentials for a platform in a session."""
        session_secret = await self._session_secret(session_id, create=True)
        assert session_secret is not None
        key = derive_key(self._secret, session_secret, session_id)
        plaintext = json.dumps(credentials, separators=(",", ":"), ensure_ascii=False).encode()
        blob = encrypt(key, plaintext, associated_data(session_id, platform, actor_id))
        item = self._item_key(session_id, platform, actor_id)
        index = self._index_key(session_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(item, blob, ex=self._ttl)
            pipe.hset(index, item, platform)
            pipe.expire(index, self._ttl)
            pipe.expire(self._session_secret_key(session_id), self._ttl)
            pipe.delete(self._closed_key(session_id))
            await pipe.execute()

    async def get(self, session_id: str, platform: str, actor_id: str) -> JSONDict | None:
        """The credentials activity stored for ``(platform, actor_id)``, or None.

        Raises :class:`CredentialError` if something is stored but does not
        decrypt under this session, platform and actor.
        """
        item = self._item_key(session_id, platform, actor_id)
        secret_key = self._session_secret_key(session_id)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.get(item)
            pipe.get(secret_key)
            pipe.exists(self._closed_key(session_id))
            blob, session_secret, closed = await pipe.execute()
        if blob is None or session_secret is None:
            return None
        if not closed:
            async with self._redis.pipeline(transaction=False) as pipe:
                for name in (item, secret_key, self._index_key(session_id)):
                    pipe.expire(name, self._ttl)
                await pipe.execute()
        key = derive_key(self._secret, _bytes(session_secret), session_id)
        plaintext = decrypt(key, _bytes(blob), associated_data(session_id, platform, actor_id))
        value: JSONDict = json.loads(plaintext)
        return value

    async def end_session(
        self, session_id: str, grace: int, *, keep_platforms: frozenset[str] | None = None
    ) -> None:
        """The session ended: delete its credentials, except that those of
        ``keep_platforms`` (all of them when None) expire after ``grace`` seconds."""
        index = self._index_key(session_id)
        raw: dict[Any, Any] = await self._redis.hgetall(index)
        entries = {_text(k): _text(v) for k, v in raw.items()}
        kept = [
            k
            for k, p in entries.items()
            if grace > 0 and (keep_platforms is None or p in keep_platforms)
        ]
        dropped = [k for k in entries if k not in kept]
        session_keys = [index, self._session_secret_key(session_id)]
        async with self._redis.pipeline(transaction=True) as pipe:
            if dropped:
                pipe.delete(*dropped)
                pipe.hdel(index, *dropped)
            if kept:
                pipe.set(self._closed_key(session_id), b"1", ex=grace)
                for key in [*kept, *session_keys]:
                    pipe.expire(key, grace)
            else:
                pipe.delete(*session_keys, self._closed_key(session_id))
            await pipe.execute()

    async def expire_session(self, session_id: str, ttl: int | None = None) -> None:
        """Set the session's keys to expire ``ttl`` seconds from now (the store's ``ttl``
        when None), without ending it: a read or write still slides them. A gateway that
        parks a session it will not end itself bounds its credentials by this."""
        index = self._index_key(session_id)
        raw: dict[Any, Any] = await self._redis.hgetall(index)
        seconds = self._ttl if ttl is None else ttl
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in [*(_text(k) for k in raw), index, self._session_secret_key(session_id)]:
                pipe.expire(key, seconds)
            await pipe.execute()

    async def delete_session(self, session_id: str) -> None:
        await self.end_session(session_id, 0)


def _bytes(value: object) -> bytes:
    if not isinstance(value, bytes):
        raise TypeError("the credential store needs a Redis client without decode_responses")
    return value


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
