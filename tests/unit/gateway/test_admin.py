"""The admin page: off without a token, its authentication, its data and its escaping."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from gateway.admin import (
    CSP,
    AdminPage,
    LagRow,
    RateWindow,
    Section,
    render_dead_letters,
    request_totals,
)
from gateway.app import create_apps
from gateway.metrics import GatewayMetrics
from gateway.settings import GatewaySettings
from sockethub.runtime.liveness import GatewayHeartbeat, read_gateway_sessions
from sockethub.runtime.runner_status import RunnerStatus, read_statuses, write_status

SECRET = "s" * 32
TOKEN = "admin-token-for-tests"


class FakeRedis:
    """Just what the admin page and the status writers use."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    async def set(self, key: str, value: bytes | str, px: int | None = None) -> None:
        self.data[key] = value.encode() if isinstance(value, str) else value

    async def mget(self, keys: Sequence[str | bytes]) -> list[bytes | None]:
        return [self.data.get(k.decode() if isinstance(k, bytes) else k) for k in keys]

    async def scan_iter(self, match: str, count: int = 10) -> AsyncIterator[bytes]:
        for key in list(self.data):
            if fnmatch.fnmatchcase(key, match):
                yield key.encode()

    def pipeline(self, transaction: bool = True) -> FakePipeline:
        return FakePipeline(self)


class FakePipeline:
    def __init__(self, redis: FakeRedis) -> None:
        self._redis = redis
        self._calls: list[tuple[str, str, int | None]] = []

    async def __aenter__(self) -> FakePipeline:
        return self

    async def __aexit__(self, *exc: object) -> None:
        pass

    def set(self, key: str, value: str, px: int | None = None) -> None:
        self._calls.append((key, value, px))

    async def execute(self) -> None:
        for key, value, px in self._calls:
            await self._redis.set(key, value, px=px)


class FakeLag:
    async def read(self) -> list[LagRow]:
        return [LagRow("dummy", 0, 12, 10, 2), LagRow("dummy", 1, 5, None, 5)]

    async def close(self) -> None:
        pass


class FakeDeadLetters:
    def __init__(self) -> None:
        self.redriven: list[tuple[list[str], bool, str]] = []

    async def recent(self) -> list[dict[str, Any]]:
        return [
            {"id": "dummy:0:7", "dead_lettered_at": "2026-01-01T00:00:00+00:00",
             "reason": "crash", "platform": "dummy", "session_id": "s1", "verb": "echo",
             "attempts": "3", "error": '<script>alert("x")</script>'},
        ]  # fmt: skip

    async def redrive(self, ids: Sequence[str], *, force: bool, operator: str) -> tuple[int, str]:
        self.redriven.append((list(ids), force, operator))
        return 0, f"re-driven {ids[0]} <b>"


def _page(redis: FakeRedis | None = None, letters: FakeDeadLetters | None = None) -> AdminPage:
    settings = GatewaySettings(secret=SECRET, admin_token=TOKEN, gateway_id="gw-a")
    return AdminPage(
        settings, TOKEN, metrics=GatewayMetrics("gw-a"), redis=redis or FakeRedis(),  # type: ignore[arg-type]
        platforms=["dummy"], reply_route="sockethub.replies.gw-a", session_count=lambda: 3,
        dead_letters=letters, lag=FakeLag(),  # type: ignore[arg-type]
    )  # fmt: skip


def _client(app: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")  # type: ignore[arg-type]


def _app(page: AdminPage) -> Starlette:
    return Starlette(routes=page.routes())


async def test_no_admin_page_without_a_token() -> None:
    apps = create_apps(GatewaySettings(secret=SECRET))
    async with _client(apps.internal) as http:
        assert (await http.get("/admin")).status_code == 404
    apps = create_apps(GatewaySettings(secret=SECRET, admin_token=TOKEN))
    async with _client(apps.internal) as http:
        assert (await http.get("/admin")).status_code == 401
    async with _client(apps.public) as http:  # never on the public listener
        assert (await http.get("/admin")).status_code == 404


async def test_the_admin_token_may_come_from_a_file(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_file = tmp_path / "admin"
    secret_file.write_text(TOKEN + "\n")
    monkeypatch.setenv("SOCKETHUB_ADMIN_TOKEN_FILE", str(secret_file))
    settings = GatewaySettings(secret=SECRET)
    assert settings.admin_token is not None
    assert settings.admin_token.get_secret_value() == TOKEN


async def test_without_credentials_the_page_asks_for_the_token() -> None:
    async with _client(_app(_page())) as http:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
            response = await http.get("/admin", headers=headers)
            assert response.status_code == 401
            assert 'action="/admin/login"' in response.text
            assert "Runners" not in response.text
            assert response.headers["content-security-policy"] == CSP
            assert response.headers["www-authenticate"].startswith("Bearer")
        http.cookies.set("sockethub_admin", TOKEN)  # the token itself is not the cookie
        assert (await http.get("/admin")).status_code == 401


async def test_a_bearer_token_shows_every_section() -> None:
    redis = FakeRedis()
    await redis.set("sockethub:sessions:sockethub.replies.gw-b", "5")
    await write_status(redis, "sockethub",  # type: ignore[arg-type]
                       RunnerStatus("dummy", "dummy-0", "running", [0, 1], last_commit=1.0,
                                    lag={"0": 2}), ttl=30)  # fmt: skip
    async with _client(_app(_page(redis, FakeDeadLetters()))) as http:
        response = await http.get("/admin", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    text = response.text
    assert response.headers["content-security-policy"] == CSP
    assert response.headers["cache-control"] == "no-store"
    for part in ('id="sessions"', 'id="rates"', 'id="lag"', 'id="runners"', 'id="redrive"',
                 "sockethub.replies.gw-b", "dummy-0", "running", "crash"):  # fmt: skip
        assert part in text, part
    assert "<script>" not in text and "&lt;script&gt;alert(&quot;x&quot;)" in text
    assert TOKEN not in text  # the form carries a derivative, never the token


async def test_the_login_form_sets_a_strict_httponly_cookie_that_is_not_the_token() -> None:
    async with _client(_app(_page())) as http:
        refused = await http.post("/admin/login", data={"token": "nope"})
        assert refused.status_code == 401 and "set-cookie" not in refused.headers
        response = await http.post("/admin/login", data={"token": TOKEN})
        assert response.status_code == 303
        cookie = response.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/admin" in cookie
        assert TOKEN not in cookie
        value = re.match(r"sockethub_admin=([^;]+)", cookie)
        assert value is not None
        http.cookies.set("sockethub_admin", value.group(1))
        page = await http.get("/admin")
        assert page.status_code == 200 and "<h2>Runners</h2>" in page.text


async def test_redrive_needs_the_form_token_and_reports_escaped() -> None:
    letters = FakeDeadLetters()
    page = _page(letters=letters)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with _client(_app(page)) as http:
        unauthenticated = await http.post("/admin/redrive", data={"id": "dummy:0:7"})
        assert unauthenticated.status_code == 401
        forged = await http.post("/admin/redrive", headers=auth, data={"id": "dummy:0:7"})
        assert forged.status_code == 403
        assert letters.redriven == []
        done = await http.post(
            "/admin/redrive", headers=auth,
            data={"id": ["dummy:0:7"], "form_token": page.auth.form_token, "force": "1"},
        )  # fmt: skip
    assert done.status_code == 200
    assert letters.redriven == [(["dummy:0:7"], True, "admin-page@gw-a")]
    assert "re-driven dummy:0:7 &lt;b&gt;" in done.text


async def test_a_failing_section_does_not_hide_the_others() -> None:
    class Broken:
        async def read(self) -> list[LagRow]:
            raise ConnectionError("secret-host:9092")

        async def close(self) -> None:
            pass

    page = _page()
    page.lag = Broken()  # type: ignore[assignment]
    data = await page.gather()
    assert data.lag.error == "unavailable (ConnectionError)"
    assert data.sessions.data == {"sockethub.replies.gw-a": 3}


def test_request_totals_and_rates_come_from_the_gateway_registry() -> None:
    metrics = GatewayMetrics("gw-a")
    for outcome in ("accepted", "accepted", "error"):
        metrics.activity("dummy", "in", outcome)
    metrics.activity("dummy", "out", "error")
    metrics.activity("dummy", "out", "timeout")
    metrics.activity("dummy", "out", "event")
    assert request_totals(metrics) == {"requests": 3.0, "errors": 1.0, "timeouts": 1.0}
    window = RateWindow(window_s=300)
    first = window.observe({"requests": 10.0}, now=100.0)
    assert first.per_second == {"requests": None}
    second = window.observe({"requests": 30.0}, now=110.0)
    assert second.per_second == {"requests": 2.0} and second.window_s == 10.0


def test_dead_letters_are_counted_by_platform_and_reason() -> None:
    letters = [{"id": f"irc:0:{n}", "platform": "irc", "reason": r, "error": ""}
               for n, r in enumerate(["crash", "crash", "undecodable"])]  # fmt: skip
    text = render_dead_letters(Section(data=letters), "t")
    assert re.search(r"<td>irc</td><td>crash</td><td>2</td>", text)
    assert re.search(r"<td>irc</td><td>undecodable</td><td>1</td>", text)


async def test_gateways_publish_their_session_count_with_their_heartbeat() -> None:
    redis = FakeRedis()
    count = 0
    beat = GatewayHeartbeat(redis, "p", "p.replies.gw", interval=1, ttl=5,  # type: ignore[arg-type]
                            sessions=lambda: count)  # fmt: skip
    count = 4
    await beat.beat()
    assert redis.data["p:alive:p.replies.gw"] == beat.incarnation.encode()
    assert await read_gateway_sessions(redis, "p") == {"p.replies.gw": 4}  # type: ignore[arg-type]


async def test_runner_statuses_round_trip_and_skip_foreign_values() -> None:
    redis = FakeRedis()
    status = RunnerStatus("irc", "irc-1", "starting", [2], lag={"2": 0})
    await write_status(redis, "p", status, ttl=30)  # type: ignore[arg-type]
    await redis.set("p:runner-status:irc:junk", "not json")
    [read] = await read_statuses(redis, "p")  # type: ignore[arg-type]
    assert read == status
