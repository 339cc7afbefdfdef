"""Every stderr line is JSON in JSON mode: structlog's, the standard library's and uvicorn's."""

from __future__ import annotations

import json
import logging

import pytest
import structlog

from gateway.server import uvicorn_config
from gateway.settings import GatewaySettings
from sockethub.runtime.observability import configure_logging
from sockethub.runtime.settings import CommonSettings


def _json_lines(text: str) -> list[dict[str, object]]:
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines
    return [json.loads(line) for line in lines]  # raises on a line that is not JSON


def test_library_records_are_json(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(CommonSettings(log_format="json"), process="test")
    structlog.get_logger("sockethub.test").warning("own.event", n=1)
    logging.getLogger("aiokafka").error("Unable connect to %r", "127.0.0.1:1")
    logging.getLogger("asyncio").warning("Unclosed thing")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("some.library").exception("failed")
    logging.getLogger("aiokafka").info("chatty")  # below WARNING: dropped
    records = _json_lines(capsys.readouterr().err)
    events = [r["event"] for r in records]
    assert events == ["own.event", "Unable connect to '127.0.0.1:1'", "Unclosed thing", "failed"]
    assert all(r["process"] == "test" for r in records)
    assert records[1]["logger"] == "aiokafka" and records[1]["level"] == "error"
    assert "boom" in json.dumps(records[3]["exception"])


def test_configuring_twice_keeps_one_handler(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(CommonSettings(log_format="json"), process="a")
    configure_logging(CommonSettings(log_format="json"), process="b")
    logging.getLogger("x").warning("once")
    records = _json_lines(capsys.readouterr().err)
    assert [(r["event"], r["process"]) for r in records] == [("once", "b")]


def test_uvicorn_records_are_json(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOCKETHUB_SECRET", "a-test-secret-of-enough-length-0123456789")
    settings = GatewaySettings(log_format="json")
    configure_logging(settings, process="gateway")
    uvicorn_config(settings)  # uvicorn applies its logging configuration here
    logging.getLogger("uvicorn.error").error("Application startup failed. Exiting.")
    records = _json_lines(capsys.readouterr().err)
    assert records[-1]["event"] == "Application startup failed. Exiting."
    assert records[-1]["logger"] == "uvicorn.error"
