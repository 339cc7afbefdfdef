"""The gateway's Kafka bridge: its reply consumer survives a record it cannot handle, and
its producer takes the configured linger and retry backoff."""

from __future__ import annotations

import asyncio
import contextlib
import time
from types import SimpleNamespace
from typing import Any

import pytest

from gateway.kafka_bridge import KafkaBridge
from gateway.metrics import GatewayMetrics
from gateway.settings import GatewaySettings


class OneBatch:
    def __init__(self, values: list[bytes | None]) -> None:
        self.values: list[bytes | None] | None = values

    async def getmany(self, **_: Any) -> dict[str, list[SimpleNamespace]]:
        values, self.values = self.values, None
        if values is None:
            await asyncio.sleep(3600)
            return {}
        now_ms = int(time.time() * 1000)
        return {
            "tp": [
                SimpleNamespace(
                    topic="t", partition=0, offset=n, value=v, headers=(), timestamp=now_ms
                )
                for n, v in enumerate(values)
            ]
        }


async def test_an_exception_in_one_record_does_not_stop_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bridge = KafkaBridge(
        GatewaySettings(), gateway_id="gw", platforms=["dummy"], metrics=GatewayMetrics()
    )
    seen: list[bytes] = []

    async def dispatch(value: bytes, headers: object) -> None:
        seen.append(value)
        if value == b"bad":
            raise RuntimeError("boom")

    monkeypatch.setattr(bridge, "_dispatch", dispatch)
    bridge._consumer = OneBatch([b"bad", None, b"good"])  # type: ignore[assignment]
    task = asyncio.create_task(bridge._consume())
    for _ in range(10):
        await asyncio.sleep(0)
    assert not task.done()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert seen == [b"bad", b"good"]


class Recorded(Exception):
    pass


class StartedProducer:
    def __init__(self, **_: Any) -> None:
        pass

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass


async def client_kwargs_at_start(
    monkeypatch: pytest.MonkeyPatch, settings: GatewaySettings, client: str
) -> dict[str, Any]:
    """The keyword arguments the bridge builds ``client`` (a Kafka client class name) with;
    the bridge's start stops there."""
    made: list[dict[str, Any]] = []

    def record(**kwargs: Any) -> None:
        made.append(kwargs)
        raise Recorded

    async def no_topics(*_: Any, **__: Any) -> list[str]:
        return []

    monkeypatch.setattr("gateway.kafka_bridge.ensure_topics", no_topics)
    monkeypatch.setattr("gateway.kafka_bridge.AIOKafkaProducer", StartedProducer)
    # The reply reader is a log reader, built where all of those are.
    home = (
        "sockethub.runtime.kafka_clients"
        if client == "AIOKafkaConsumer"
        else "gateway.kafka_bridge"
    )
    monkeypatch.setattr(f"{home}.{client}", record)
    bridge = KafkaBridge(settings, gateway_id="gw", platforms=["dummy"], metrics=GatewayMetrics())
    with pytest.raises(Recorded):
        await bridge._start()
    return made[0]


async def test_the_producer_lingers_as_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOCKETHUB_PRODUCE_LINGER_MS", "9")
    settings = GatewaySettings()
    assert settings.produce_linger_ms == 9
    assert GatewaySettings.model_fields["produce_linger_ms"].default == 5
    kwargs = await client_kwargs_at_start(monkeypatch, settings, "AIOKafkaProducer")
    assert kwargs["linger_ms"] == 9
    assert kwargs["retry_backoff_ms"] == 20


async def test_the_reply_reader_fetches_without_waiting_for_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Replies become readable a committed transaction at a time: the reply reader takes
    them at once, while runners keep gathering kafka_fetch_min_bytes per fetch."""
    settings = GatewaySettings()
    kwargs = await client_kwargs_at_start(monkeypatch, settings, "AIOKafkaConsumer")
    assert kwargs["isolation_level"] == "read_committed"
    assert kwargs["fetch_min_bytes"] == 1
    assert settings.kafka_fetch_min_bytes == 8192
    assert kwargs["fetch_max_wait_ms"] == settings.kafka_fetch_wait_ms


async def test_the_reply_readers_fetch_size_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOCKETHUB_REPLY_FETCH_MIN_BYTES", "4096")
    monkeypatch.setenv("SOCKETHUB_KAFKA_FETCH_MIN_BYTES", "100")
    kwargs = await client_kwargs_at_start(monkeypatch, GatewaySettings(), "AIOKafkaConsumer")
    assert kwargs["fetch_min_bytes"] == 4096
    monkeypatch.setenv("SOCKETHUB_REPLY_FETCH_MIN_BYTES", "0")
    with pytest.raises(ValueError, match="reply_fetch_min_bytes"):
        GatewaySettings()
