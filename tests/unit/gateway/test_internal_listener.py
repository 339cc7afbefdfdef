"""Probes and metrics live on the internal listener; the public one serves clients only."""

from __future__ import annotations

import socket

import httpx
import pytest
from pydantic import ValidationError

from gateway.app import create_apps
from gateway.health import Readiness
from gateway.server import bind_internal, internal_config
from gateway.settings import GatewaySettings

SECRET = "s" * 32


def _client(app: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")  # type: ignore[arg-type]


def test_the_internal_port_defaults_to_the_public_port_plus_one() -> None:
    assert GatewaySettings(secret=SECRET).internal_address() == ("127.0.0.1", 10551)
    assert GatewaySettings(secret=SECRET, port=10552).internal_address() == ("127.0.0.1", 10553)
    assert GatewaySettings(secret=SECRET, port=0).internal_address() == ("127.0.0.1", 0)
    given = GatewaySettings(secret=SECRET, internal_host="0.0.0.0", internal_port=9102)
    assert given.internal_address() == ("0.0.0.0", 9102)


def test_the_internal_port_may_not_be_the_public_one() -> None:
    with pytest.raises(ValidationError, match="SOCKETHUB_INTERNAL_PORT"):
        GatewaySettings(secret=SECRET, port=10550, internal_port=10550)
    with pytest.raises(ValidationError, match="SOCKETHUB_INTERNAL_PORT"):
        GatewaySettings(secret=SECRET, port=65535)


async def test_the_public_app_serves_no_readiness_and_no_metrics() -> None:
    apps = create_apps(GatewaySettings(secret=SECRET))
    async with _client(apps.public) as http:
        assert (await http.get("/readyz")).status_code == 404
        assert (await http.get("/metrics")).status_code == 404
        assert (await http.get("/healthz")).text == "ok"
    async with _client(apps.internal) as http:
        assert (await http.get("/healthz")).text == "ok"
        metrics = await http.get("/metrics")
        assert metrics.status_code == 200
        assert "sockethub_gateway_connections" in metrics.text


async def test_the_demo_page_is_a_setting_and_off_by_default() -> None:
    async with _client(create_apps(GatewaySettings(secret=SECRET)).public) as http:
        landing = await http.get("/")
        assert landing.status_code == 200 and "Content-Security-Policy" not in landing.headers
        assert (await http.get("/demo/demo.js")).status_code == 404
        # web apps load the client bundle from the gateway, demo or not
        assert (await http.get("/sockethub-client.js")).status_code in (200, 503)
    demo = create_apps(GatewaySettings(secret=SECRET, demo=True)).public
    async with _client(demo) as http:
        page = await http.get("/")
        assert "Content-Security-Policy" in page.headers
        assert (await http.get("/demo/demo.js")).status_code == 200


def test_the_internal_listener_binds_its_own_address() -> None:
    settings = GatewaySettings(secret=SECRET, port=0, internal_port=0)
    sock = bind_internal(settings)
    try:
        assert sock.getsockname()[0] == "127.0.0.1"
        config = internal_config(settings, create_apps(settings).internal)
        assert config.lifespan == "off", "the public server runs the gateway's lifespan"
    finally:
        sock.close()


def test_a_taken_internal_port_fails_plainly() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        settings = GatewaySettings(secret=SECRET, port=0, internal_port=port)
        with pytest.raises(OSError):
            bind_internal(settings)


async def test_not_ready_until_the_public_listener_serves() -> None:
    """The internal listener answers while the public one still runs its lifespan (or
    already stops): a probe must not send clients to a port that refuses them."""

    class Ready:
        ready = True

    class Redis:
        async def ping(self) -> bool:
            return True

    readiness = Readiness(GatewaySettings(secret=SECRET), Redis(), bridge=Ready())  # type: ignore[arg-type]

    async def kafka_ok() -> bool:
        return True

    readiness._kafka_ok = kafka_ok  # type: ignore[method-assign]
    serving = False
    readiness.serving = lambda: serving
    assert (await readiness.check())["ready"] is False
    serving = True
    assert (await readiness.check()) == {
        "ready": True, "kafka": True, "redis": True, "replies": True, "serving": True
    }  # fmt: skip
