"""The credential store against the real Redis: encryption at rest, sliding TTL, deletion."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from sockethub.runtime.credentials import CredentialError, CredentialStore

pytestmark = pytest.mark.redis

SECRET = "a-server-secret-for-tests-0123456789"
CREDS = {
    "@context": ["as", "sockethub", "irc"],
    "type": "credentials",
    "actor": {"id": "nick@irc.example", "type": "person"},
    "object": {"type": "credentials", "nick": "nick", "password": "hunter2-very-secret"},
}


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


async def _keys(redis: Redis, prefix: str) -> list[bytes]:
    return [key async for key in redis.scan_iter(match=f"{prefix}:*")]


async def test_put_then_get_from_another_process_view(redis: Redis, prefix: str) -> None:
    gateway = CredentialStore(redis, SECRET, prefix=prefix, ttl=120)
    runner = CredentialStore(redis, SECRET, prefix=prefix, ttl=120)
    await gateway.put("sid-1", "irc", "nick@irc.example", CREDS)
    assert await runner.get("sid-1", "irc", "nick@irc.example") == CREDS
    assert await runner.get("sid-1", "irc", "other@irc.example") is None
    assert await runner.get("sid-2", "irc", "nick@irc.example") is None
    assert await runner.get("sid-1", "xmpp", "nick@irc.example") is None


async def test_nothing_in_redis_reveals_the_secret(redis: Redis, prefix: str) -> None:
    store = CredentialStore(redis, SECRET, prefix=prefix, ttl=120)
    await store.put("sid-1", "irc", "nick@irc.example", CREDS)
    keys = await _keys(redis, prefix)
    assert keys
    for key in keys:
        assert b"nick@irc.example" not in key
        kind = await redis.type(key)
        values = (
            [await redis.get(key)]
            if kind == b"string"
            else list((await redis.hgetall(key)).values())
        )
        for value in values:
            assert b"hunter2" not in value


async def test_wrong_server_secret_fails_authentication(redis: Redis, prefix: str) -> None:
    await CredentialStore(redis, SECRET, prefix=prefix).put("sid", "irc", "a", CREDS)
    other = CredentialStore(redis, "a-different-server-secret-0000", prefix=prefix)
    with pytest.raises(CredentialError):
        await other.get("sid", "irc", "a")


async def test_a_ciphertext_moved_to_another_actor_fails(redis: Redis, prefix: str) -> None:
    store = CredentialStore(redis, SECRET, prefix=prefix)
    await store.put("sid", "irc", "a", CREDS)
    await store.put("sid", "irc", "b", {**CREDS, "object": {"password": "other"}})
    key_a = store._item_key("sid", "irc", "a")
    key_b = store._item_key("sid", "irc", "b")
    await redis.set(key_b, await redis.get(key_a))
    with pytest.raises(CredentialError):
        await store.get("sid", "irc", "b")


async def test_ttl_slides_on_read(redis: Redis, prefix: str) -> None:
    store = CredentialStore(redis, SECRET, prefix=prefix, ttl=3)
    await store.put("sid", "irc", "a", CREDS)
    for _ in range(4):  # 4.8 s in all: longer than the TTL, but each read extends it
        await asyncio.sleep(1.2)
        assert await store.get("sid", "irc", "a") == CREDS
    await store.put("other", "irc", "a", CREDS)  # unrelated traffic does not extend it
    await asyncio.sleep(4.5)  # no reads: the TTL runs out
    assert await store.get("sid", "irc", "a") is None
    assert await store.get("other", "irc", "a") is None


async def test_end_session_deletes_non_persistent_and_keeps_persistent_for_grace(
    redis: Redis, prefix: str
) -> None:
    store = CredentialStore(redis, SECRET, prefix=prefix, ttl=600)
    await store.put("sid", "dummy", "a", CREDS)
    await store.put("sid", "irc", "a", CREDS)
    await store.end_session("sid", 2, keep_platforms=frozenset({"irc", "xmpp"}))
    assert await store.get("sid", "dummy", "a") is None
    assert await store.get("sid", "irc", "a") == CREDS  # within the grace period
    ttl = await redis.ttl(store._item_key("sid", "irc", "a"))
    assert 0 < ttl <= 2, "a read after the session ended must not extend the grace period"
    deadline = asyncio.get_running_loop().time() + 15
    while await store.get("sid", "irc", "a") is not None:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.3)
    assert await _keys(redis, prefix) == []


async def test_delete_session_removes_everything(redis: Redis, prefix: str) -> None:
    store = CredentialStore(redis, SECRET, prefix=prefix, ttl=600)
    await store.put("sid", "irc", "a", CREDS)
    await store.put("sid", "xmpp", "b", CREDS)
    await store.put("keep", "irc", "a", CREDS)
    await store.delete_session("sid")
    assert await store.get("sid", "irc", "a") is None
    assert await store.get("keep", "irc", "a") == CREDS
    remaining = await _keys(redis, prefix)
    assert remaining and all(b"{keep}" in key for key in remaining)


async def test_a_parked_session_expires_with_its_entry_until_it_is_used_again(
    redis: Redis, prefix: str
) -> None:
    """A gateway that stops parks its sessions with no timer to end them: their keys are set
    to expire with the recovery entry; a recovery (or any use) gives them the full expiry."""
    store = CredentialStore(redis, SECRET, prefix=prefix, ttl=3600)
    await store.put("sid-1", "irc", "nick@irc.example", CREDS)
    await store.put("sid-1", "xmpp", "nick@xmpp.example", CREDS)
    await store.expire_session("sid-1", 30)
    keys = await _keys(redis, prefix)
    assert len(keys) == 4  # two items, the index, the session secret
    assert all(0 < ttl <= 30 for ttl in [await redis.ttl(key) for key in keys])
    assert await store.get("sid-1", "irc", "nick@irc.example") == CREDS  # still there
    await store.expire_session("sid-1")
    assert all(ttl > 30 for ttl in [await redis.ttl(key) for key in keys])
