"""The per-address cap counted in a real Redis: across gateways, a dead gateway's
connections stop counting, Redis errors fail open and heal, rate blocks are shared."""

from __future__ import annotations

import uuid

import pytest

from gateway import address_cap
from gateway.address_cap import AddressCap
from sockethub.runtime.redis_client import redis_client

pytestmark = [pytest.mark.redis]

ADDRESS = "127.0.0.2"


async def test_the_cap_holds_across_gateways_and_forgets_a_dead_one(redis_url: str) -> None:
    redis = redis_client(redis_url)
    prefix = f"cap{uuid.uuid4().hex[:8]}"
    a = AddressCap(3, redis, prefix=prefix, gateway_id="a")
    b = AddressCap(3, redis, prefix=prefix, gateway_id="b")
    try:
        await a.start()
        await b.start()
        assert [(await a.acquire(ADDRESS)).allowed for _ in range(2)] == [True, True]
        assert (await b.acquire(ADDRESS)).allowed
        assert not (await b.acquire(ADDRESS)).allowed
        assert not (await a.acquire(ADDRESS)).allowed
        assert (await b.acquire("127.0.0.3")).allowed
        await a.release(ADDRESS)
        assert (await b.acquire(ADDRESS)).allowed
        # "a" dies without goodbye: once its heartbeat key expires, its count is ignored.
        assert a._beat is not None
        a._beat.cancel()
        await redis.delete(f"{prefix}:alive:{a.incarnation}")  # what the expiry does
        assert (await b.acquire(ADDRESS)).allowed
        assert await redis.hkeys(f"{prefix}:conns:{ADDRESS}") == [b.incarnation.encode()]
        # A clean shutdown takes its counts out at once.
        await b.close()
        assert not await redis.exists(f"{prefix}:conns:{ADDRESS}")
    finally:
        await a.close()
        await b.close()
        await redis.aclose()


async def test_the_liveness_key_expires(redis_url: str) -> None:
    redis = redis_client(redis_url)
    prefix = f"cap{uuid.uuid4().hex[:8]}"
    cap = AddressCap(3, redis, prefix=prefix, gateway_id="a")
    try:
        await cap.heartbeat()
        ttl = await redis.ttl(f"{prefix}:alive:{cap.incarnation}")
        assert 0 < ttl <= address_cap.ALIVE_TTL_S < 60
    finally:
        await cap.close()
        await redis.aclose()


async def test_redis_errors_fail_open_and_the_heartbeat_heals_the_count(redis_url: str) -> None:
    good = redis_client(redis_url)
    prefix = f"cap{uuid.uuid4().hex[:8]}"
    cap = AddressCap(2, good, prefix=prefix, gateway_id="a")
    broken = redis_client("redis://127.0.0.1:1/0", wait_s=1)  # nothing listens on port 1
    try:
        await cap.start()
        assert (await cap.acquire(ADDRESS)).allowed
        cap._acquire = broken.register_script(address_cap._ACQUIRE)
        assert (await cap.acquire(ADDRESS)).allowed  # Redis down: admitted
        assert not (await cap.acquire(ADDRESS)).allowed  # still this process's own cap
        assert await good.hget(f"{prefix}:conns:{ADDRESS}", cap.incarnation) == b"1"
        await cap.heartbeat()
        assert await good.hget(f"{prefix}:conns:{ADDRESS}", cap.incarnation) == b"2"
    finally:
        await cap.close()
        await good.aclose()
        await broken.aclose()


async def test_counts_come_back_after_redis_lost_its_data(redis_url: str) -> None:
    redis = redis_client(redis_url)
    prefix = f"cap{uuid.uuid4().hex[:8]}"
    cap = AddressCap(2, redis, prefix=prefix, gateway_id="a")
    other = AddressCap(2, redis, prefix=prefix, gateway_id="b")
    try:
        await cap.start()
        await other.start()
        assert (await cap.acquire(ADDRESS)).allowed and (await cap.acquire(ADDRESS)).allowed
        # What a Redis restart without persistence leaves of this prefix: nothing.
        await redis.delete(f"{prefix}:conns:{ADDRESS}", f"{prefix}:alive:{cap.incarnation}")
        await cap.heartbeat()
        assert await redis.hget(f"{prefix}:conns:{ADDRESS}", cap.incarnation) == b"2"
        assert not (await other.acquire(ADDRESS)).allowed
    finally:
        await cap.close()
        await other.close()
        await redis.aclose()


async def test_a_rate_block_is_shared_with_the_next_admission(redis_url: str) -> None:
    redis = redis_client(redis_url)
    prefix = f"cap{uuid.uuid4().hex[:8]}"
    a = AddressCap(5, redis, prefix=prefix, gateway_id="a")
    b = AddressCap(5, redis, prefix=prefix, gateway_id="b")
    try:
        await a.share_block(ADDRESS, 30)
        admission = await b.acquire(ADDRESS)
        assert admission.allowed and 20 < admission.blocked_for <= 30
        assert (await b.acquire("127.0.0.3")).blocked_for == 0
    finally:
        await a.close()
        await b.close()
        await redis.aclose()
