"""Consumer fetch settings come from the shared settings (env or CLI)."""

from __future__ import annotations

import pytest

from sockethub.runtime.kafka_clients import client_kwargs, fetch_kwargs
from sockethub.runtime.settings import CommonSettings


def test_defaults_gather_records_per_fetch() -> None:
    kwargs = fetch_kwargs(CommonSettings())
    assert kwargs == {"fetch_max_wait_ms": 25, "fetch_min_bytes": 8192}


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOCKETHUB_KAFKA_FETCH_WAIT_MS", "0")
    monkeypatch.setenv("SOCKETHUB_KAFKA_FETCH_MIN_BYTES", "1")
    assert fetch_kwargs(CommonSettings()) == {"fetch_max_wait_ms": 0, "fetch_min_bytes": 1}


def test_rejects_a_negative_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOCKETHUB_KAFKA_FETCH_WAIT_MS", "-1")
    with pytest.raises(ValueError, match="kafka_fetch_wait_ms"):
        CommonSettings()


def test_retry_backoff_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert client_kwargs(CommonSettings())["retry_backoff_ms"] == 20
    monkeypatch.setenv("SOCKETHUB_KAFKA_RETRY_BACKOFF_MS", "150")
    assert client_kwargs(CommonSettings())["retry_backoff_ms"] == 150
    monkeypatch.setenv("SOCKETHUB_KAFKA_RETRY_BACKOFF_MS", "0")
    with pytest.raises(ValueError, match="kafka_retry_backoff_ms"):
        CommonSettings()


def test_one_consumer_can_override_min_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOCKETHUB_KAFKA_FETCH_MIN_BYTES", "2048")
    settings = CommonSettings()
    assert fetch_kwargs(settings, min_bytes=1) == {"fetch_max_wait_ms": 25, "fetch_min_bytes": 1}
    assert fetch_kwargs(settings)["fetch_min_bytes"] == 2048
