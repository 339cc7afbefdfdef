"""The admin page on the internal listener: ``/admin``, off unless ``SOCKETHUB_ADMIN_TOKEN``.

One server-rendered HTML page (no script, a strict CSP) that answers an operator's three
questions: what is stuck, how far behind each platform is, and what was dead-lettered. It
shows sessions per gateway, consumer lag per platform and partition, runner instances, dead
letters by reason, and this gateway's rates of requests, errors and timeouts. The only
action is re-driving dead letters, which goes through ``sockethub dlq``'s audited redrive.

Authentication: ``Authorization: Bearer <token>``, or, for a browser, a login form that
sets an HttpOnly, SameSite=Strict cookie holding an HMAC of the token (never the token).
The re-drive form also carries a token derived from the admin token, so that a request
forged by another page cannot re-drive even where the cookie's SameSite is not honoured.
Every comparison is constant-time.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import html
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qs

import structlog
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition
from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from gateway.metrics import GatewayMetrics
from gateway.settings import GatewaySettings
from schemas.topics import TopicLayout
from sockethub.runtime.kafka_clients import client_kwargs, committed_offsets
from sockethub.runtime.liveness import read_gateway_sessions
from sockethub.runtime.runner_status import RunnerStatus, read_statuses, runner_group

log = structlog.get_logger("gateway.admin")

COOKIE = "sockethub_admin"
SECTION_TIMEOUT_S = 10.0
"""Each section is gathered on its own within this; a slow one shows as unavailable."""
MAX_FORM_BYTES = 65536
RATE_WINDOW_S = 300.0
DEAD_LETTER_ROWS = 50

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}

STYLE = """body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;color:#1b1b1b;background:#fafafa}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:1.6rem;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.4rem 0}td,th{border:1px solid #ccc;padding:.2rem .5rem;
text-align:left;vertical-align:top}th{background:#eee}.num{text-align:right}
.bad{color:#a00;font-weight:bold}.muted{color:#666}.note{color:#666;font-size:.9em}
form.inline{display:inline}pre{background:#fff;border:1px solid #ccc;padding:.5rem}
"""


ICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
    '<circle cx="8" cy="8" r="7" fill="#345"/></svg>'
)


class DeadLetterSource(Protocol):
    """The dead-letter side of ``sockethub dlq``, given to the gateway by the CLI (the
    gateway cannot import the CLI layer)."""

    async def recent(self) -> list[dict[str, Any]]:
        """Every dead letter's summary (``sockethub dlq list --format json`` rows)."""
        ...

    async def redrive(self, ids: Sequence[str], *, force: bool, operator: str) -> tuple[int, str]:
        """Re-drive ``ids`` (audited); the exit status and what it printed."""
        ...


def _derive(token: str, purpose: str) -> str:
    return hmac.new(token.encode(), purpose.encode(), hashlib.sha256).hexdigest()


class AdminAuth:
    """Bearer token or session cookie; the cookie holds a derivative of the token, so a
    leaked cookie does not reveal it, and changing the token logs every browser out."""

    def __init__(self, token: str) -> None:
        self._token = token.encode()
        self.cookie_value = _derive(token, "sockethub-admin-session")
        self.form_token = _derive(token, "sockethub-admin-form")

    def token_matches(self, candidate: str) -> bool:
        return hmac.compare_digest(candidate.encode(), self._token)

    def allowed(self, request: Request) -> bool:
        scheme, _, credential = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and credential:
            return self.token_matches(credential.strip())
        cookie = request.cookies.get(COOKIE)
        return cookie is not None and hmac.compare_digest(cookie, self.cookie_value)

    def form_ok(self, value: str | None) -> bool:
        return value is not None and hmac.compare_digest(value, self.form_token)


@dataclass
class LagRow:
    platform: str
    partition: int
    end: int
    committed: int | None
    lag: int


@dataclass
class Rates:
    totals: dict[str, float]
    per_second: dict[str, float | None]
    window_s: float | None


class RateWindow:
    """Totals of this gateway's counters at each page view; a rate is the difference to
    the oldest view within :data:`RATE_WINDOW_S` (no background sampling: the page costs
    nothing while nobody looks)."""

    def __init__(self, window_s: float = RATE_WINDOW_S) -> None:
        self._window_s = window_s
        self._samples: deque[tuple[float, dict[str, float]]] = deque()

    def observe(self, totals: dict[str, float], now: float | None = None) -> Rates:
        now = time.monotonic() if now is None else now
        while len(self._samples) > 1 and now - self._samples[1][0] >= self._window_s:
            self._samples.popleft()
        rates: dict[str, float | None] = dict.fromkeys(totals)
        window = None
        if self._samples and now - self._samples[0][0] >= 1.0:
            then, old = self._samples[0]
            window = now - then
            for name, value in totals.items():
                rates[name] = max(0.0, value - old.get(name, 0.0)) / window
        self._samples.append((now, dict(totals)))
        return Rates(totals=totals, per_second=rates, window_s=window)


def request_totals(metrics: GatewayMetrics) -> dict[str, float]:
    """Requests accepted, requests answered with an error, and timeouts, from this
    gateway's own registry (``sockethub_gateway_activities_total``)."""
    totals = {"requests": 0.0, "errors": 0.0, "timeouts": 0.0}
    for family in metrics.registry.collect():
        if family.name != "sockethub_gateway_activities":
            continue
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue
            direction, outcome = sample.labels["direction"], sample.labels["outcome"]
            if direction == "in" and outcome != "event":
                totals["requests"] += sample.value
            if direction == "out" and outcome == "error":
                totals["errors"] += sample.value
            if direction == "out" and outcome == "timeout":
                totals["timeouts"] += sample.value
    return totals


class LagReader:
    """Committed offsets of each runner group against the request topics' end offsets.

    Committed, not finished-through: a runner's own ``sockethub_runner_consumer_lag`` is
    the finer figure; this one needs no runner to answer, so it also shows a platform
    whose runners are all down."""

    def __init__(self, settings: GatewaySettings, platforms: Sequence[str]) -> None:
        self._settings = settings
        self._layout = TopicLayout(settings)
        self._platforms = list(platforms)
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()

    async def _clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        async with self._lock:
            if self._admin is None or self._consumer is None:
                kwargs = client_kwargs(self._settings)
                admin = AIOKafkaAdminClient(**kwargs)
                consumer = AIOKafkaConsumer(**kwargs, enable_auto_commit=False)
                try:
                    await admin.start()
                    await consumer.start()
                except BaseException:
                    with contextlib.suppress(Exception):
                        await admin.close()
                    with contextlib.suppress(Exception):
                        await consumer.stop()
                    raise
                self._admin, self._consumer = admin, consumer
            return self._admin, self._consumer

    async def read(self) -> list[LagRow]:
        admin, consumer = await self._clients()
        topics = {self._layout.requests(p): p for p in self._platforms}
        existing = set(await admin.list_topics())
        described = await admin.describe_topics([t for t in topics if t in existing])
        by_platform: dict[str, list[TopicPartition]] = {}
        for topic in described:
            name = topic["topic"]
            by_platform[topics[name]] = [
                TopicPartition(name, p["partition"]) for p in topic["partitions"]
            ]
        everything = [tp for tps in by_platform.values() for tp in tps]
        if not everything:
            return []
        ends = await consumer.end_offsets(everything)
        starts = await consumer.beginning_offsets(everything)
        rows = []
        backoff = self._settings.kafka_retry_backoff_ms / 1000
        for platform, tps in sorted(by_platform.items()):
            group = runner_group(self._settings.topic_prefix, platform)
            committed = await committed_offsets(admin, group, tps, retry_backoff_s=backoff)
            for tp in sorted(tps, key=lambda t: t.partition):
                om = committed.get(tp)
                position = om.offset if om is not None else starts[tp]
                rows.append(LagRow(platform, tp.partition, ends[tp],
                                   om.offset if om is not None else None,
                                   max(0, ends[tp] - position)))  # fmt: skip
        return rows

    async def close(self) -> None:
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                await self._consumer.stop()
        if self._admin is not None:
            with contextlib.suppress(Exception):
                await self._admin.close()
        self._admin = self._consumer = None


@dataclass
class Section:
    """One part of the page: its data, or why it is missing."""

    data: Any = None
    error: str | None = None


@dataclass
class AdminData:
    gateway_id: str
    sessions: Section = field(default_factory=Section)
    rates: Section = field(default_factory=Section)
    lag: Section = field(default_factory=Section)
    runners: Section = field(default_factory=Section)
    dead_letters: Section = field(default_factory=Section)


async def _section(call: Callable[[], Awaitable[Any]]) -> Section:
    try:
        async with asyncio.timeout(SECTION_TIMEOUT_S):
            return Section(data=await call())
    except TimeoutError:
        return Section(error=f"no answer within {SECTION_TIMEOUT_S:.0f} s")
    except Exception as exc:
        # The type only: a client's message may carry an address or a user name.
        log.warning("admin.section_failed", error=type(exc).__name__)
        return Section(error=f"unavailable ({type(exc).__name__})")


class AdminPage:
    """The data behind ``/admin`` and its routes."""

    def __init__(
        self,
        settings: GatewaySettings,
        token: str,
        *,
        metrics: GatewayMetrics,
        redis: Redis,
        platforms: Sequence[str],
        reply_route: str,
        session_count: Callable[[], int],
        dead_letters: DeadLetterSource | None = None,
        lag: LagReader | None = None,
    ) -> None:
        self.settings = settings
        self.auth = AdminAuth(token)
        self.metrics = metrics
        self.redis = redis
        self.reply_route = reply_route
        self.session_count = session_count
        self.dead_letters = dead_letters
        self.lag = lag if lag is not None else LagReader(settings, platforms)
        self.rate_window = RateWindow()

    async def _sessions(self) -> dict[str, int]:
        found = await read_gateway_sessions(self.redis, self.settings.topic_prefix)
        # This gateway's own count is known without Redis, and is the freshest.
        found[self.reply_route] = self.session_count()
        return dict(sorted(found.items()))

    async def _rates(self) -> Rates:
        return self.rate_window.observe(request_totals(self.metrics))

    async def _runners(self) -> list[RunnerStatus]:
        return await read_statuses(self.redis, self.settings.topic_prefix)

    async def _dead_letters(self) -> list[dict[str, Any]] | None:
        if self.dead_letters is None:
            return None
        return await self.dead_letters.recent()

    async def gather(self) -> AdminData:
        sessions, rates, lag, runners, letters = await asyncio.gather(
            _section(self._sessions), _section(self._rates), _section(self.lag.read),
            _section(self._runners), _section(self._dead_letters),
        )  # fmt: skip
        return AdminData(
            gateway_id=self.settings.gateway_id, sessions=sessions, rates=rates, lag=lag,
            runners=runners, dead_letters=letters,
        )  # fmt: skip

    async def close(self) -> None:
        await self.lag.close()

    # -- HTTP ---------------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/admin", self.index, methods=["GET"]),
            Route("/admin/admin.css", self.style, methods=["GET"]),
            Route("/admin/favicon.svg", self.icon, methods=["GET"]),
            Route("/admin/login", self.login, methods=["POST"]),
            Route("/admin/logout", self.logout, methods=["POST"]),
            Route("/admin/redrive", self.redrive, methods=["POST"]),
        ]

    async def style(self, request: Request) -> Response:
        return Response(STYLE, media_type="text/css", headers=HEADERS)

    async def icon(self, request: Request) -> Response:
        """Named by the page, so that the browser does not ask for a missing /favicon.ico."""
        return Response(ICON, media_type="image/svg+xml", headers=HEADERS)

    async def index(self, request: Request) -> Response:
        if not self.auth.allowed(request):
            return _login_page()
        return _html(render_page(await self.gather(), self.auth.form_token))

    async def login(self, request: Request) -> Response:
        form = await _form(request)
        if form is None or not self.auth.token_matches(_first(form, "token") or ""):
            log.warning("admin.login_refused")
            return _login_page("That is not the admin token.")
        response = RedirectResponse("/admin", status_code=303, headers=HEADERS)
        response.set_cookie(
            COOKIE, self.auth.cookie_value, httponly=True, samesite="strict", path="/admin"
        )
        log.info("admin.login")
        return response

    async def logout(self, request: Request) -> Response:
        response = RedirectResponse("/admin", status_code=303, headers=HEADERS)
        response.delete_cookie(COOKIE, path="/admin", httponly=True, samesite="strict")
        return response

    async def redrive(self, request: Request) -> Response:
        if not self.auth.allowed(request):
            return _login_page()
        form = await _form(request)
        if form is None or not self.auth.form_ok(_first(form, "form_token")):
            return _html(_page("Re-drive refused", "<p>The form is stale or forged: reload "
                               '<a href="/admin">the admin page</a>.</p>'), 403)  # fmt: skip
        ids = [i for i in form.get("id", []) if i]
        if self.dead_letters is None or not ids:
            body = "<p>Nothing to re-drive.</p>" if ids == [] else "<p>Not available here.</p>"
            return _html(_page("Re-drive", body + _back()), 400)
        force = _first(form, "force") == "1"
        operator = f"admin-page@{self.settings.gateway_id}"
        try:
            status, output = await self.dead_letters.redrive(ids, force=force, operator=operator)
        except Exception as exc:
            log.warning("admin.redrive_failed", error=type(exc).__name__)
            status, output = 2, f"re-drive failed: {type(exc).__name__}"
        log.info("admin.redrive", ids=ids, force=force, status=status)
        title = "Re-driven" if status == 0 else "Re-drive: some refused"
        return _html(_page(title, f"<pre>{_e(output)}</pre>{_back()}"))


async def _form(request: Request) -> dict[str, list[str]] | None:
    """An ``application/x-www-form-urlencoded`` body, parsed without python-multipart."""
    if request.headers.get("content-type", "").split(";")[0].strip() != (
        "application/x-www-form-urlencoded"
    ):
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    try:
        return parse_qs(body.decode(), keep_blank_values=True, max_num_fields=1000)
    except (UnicodeDecodeError, ValueError):
        return None


def _first(form: Mapping[str, list[str]], name: str) -> str | None:
    values = form.get(name)
    return values[0] if values else None


# -- rendering (every value through _e) -------------------------------------------------------


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers=HEADERS)


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title>"
        '<link rel="stylesheet" href="/admin/admin.css">'
        '<link rel="icon" href="/admin/favicon.svg" type="image/svg+xml"></head>'
        f"<body><h1>{_e(title)}</h1>{body}</body></html>"
    )


def _back() -> str:
    return '<p><a href="/admin">Back to the admin page</a></p>'


def _login_page(problem: str | None = None) -> HTMLResponse:
    note = f'<p class="bad" id="login-problem">{_e(problem)}</p>' if problem else ""
    body = (
        f"{note}<p>This page needs the admin token (<code>SOCKETHUB_ADMIN_TOKEN</code>), as "
        "<code>Authorization: Bearer …</code> or here:</p>"
        '<form method="post" action="/admin/login" id="login">'
        '<label>Admin token <input type="password" name="token" autocomplete="off" required>'
        '</label> <button type="submit">Sign in</button></form>'
    )
    response = _html(_page("Sockethub admin: sign in", body), 401)
    response.headers["WWW-Authenticate"] = 'Bearer realm="sockethub-admin"'
    return response


def _table(table_id: str, headers: Iterable[str], rows: Iterable[Iterable[str]], empty: str) -> str:
    """``rows`` are already-escaped cells."""
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    if not body:
        return f'<p class="muted" id="{table_id}-empty">{_e(empty)}</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _unavailable(section: Section) -> str | None:
    if section.error is not None:
        return f'<p class="bad">{_e(section.error)}</p>'
    return None


def _age(then: float | None, now: float) -> str:
    if then is None:
        return "never"
    seconds = max(0.0, now - then)
    return f"{seconds:.0f} s ago" if seconds < 120 else f"{seconds / 60:.0f} min ago"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}/s"


def render_sessions(section: Section) -> str:
    if (bad := _unavailable(section)) is not None:
        return bad
    rows = [(_e(name), f'<span class="num">{_e(count)}</span>')
            for name, count in section.data.items()]  # fmt: skip
    return _table("sessions", ["gateway (reply topic)", "sessions"], rows, "No live gateway.")


def render_rates(section: Section) -> str:
    if (bad := _unavailable(section)) is not None:
        return bad
    rates: Rates = section.data
    rows = [(_e(name), _e(f"{rates.totals[name]:.0f}"), _e(_rate(rates.per_second[name])))
            for name in rates.totals]  # fmt: skip
    window = (f"over the last {rates.window_s:.0f} s of page views" if rates.window_s
              else "rates appear from the second view on")  # fmt: skip
    return (_table("rates", ["this gateway", "total", "rate"], rows, "")
            + f'<p class="note">{_e(window)}</p>')  # fmt: skip


def render_lag(section: Section) -> str:
    if (bad := _unavailable(section)) is not None:
        return bad
    rows = []
    for row in section.data:
        lag = f'<span class="{"bad" if row.lag else "num"}">{_e(row.lag)}</span>'
        committed = _e(row.committed) if row.committed is not None else "none"
        rows.append((_e(row.platform), _e(row.partition), _e(row.end), committed, lag))
    return _table("lag", ["platform", "partition", "end offset", "committed", "lag"], rows,
                  "No request topics yet.")  # fmt: skip


def render_runners(section: Section, now: float) -> str:
    if (bad := _unavailable(section)) is not None:
        return bad
    rows = []
    for status in section.data:
        state_class = "num" if status.state == "running" else "bad"
        lag = ", ".join(f"{p}: {n}" for p, n in sorted(status.lag.items())) or "-"
        rows.append((
            _e(status.platform), _e(status.instance),
            f'<span class="{state_class}">{_e(status.state)}</span>',
            _e(", ".join(str(p) for p in status.partitions) or "-"),
            _e(_age(status.last_commit, now)),
            _e(f"{status.transaction_open_seconds:.1f} s"),
            _e(lag), _e(_age(status.updated, now)),
        ))  # fmt: skip
    headers = ["platform", "instance", "state", "partitions", "last transaction",
               "open transaction", "lag", "reported"]  # fmt: skip
    return _table("runners", headers, rows, "No runner has reported (runners write their "
                  "status every few seconds; a silent one expires).")  # fmt: skip


def render_dead_letters(section: Section, form_token: str) -> str:
    if (bad := _unavailable(section)) is not None:
        return bad
    if section.data is None:
        return '<p class="muted">Dead letters are read through <code>sockethub gateway</code>.</p>'
    letters: list[dict[str, Any]] = section.data
    counts: dict[tuple[str, str], int] = {}
    for letter in letters:
        key = (str(letter.get("platform")), str(letter.get("reason")))
        counts[key] = counts.get(key, 0) + 1
    summary = _table("dead-letter-reasons", ["platform", "reason", "dead letters"],
                     [(_e(p), _e(r), _e(n)) for (p, r), n in sorted(counts.items())],
                     "No dead letters.")  # fmt: skip
    if not letters:
        return summary
    recent = letters[-DEAD_LETTER_ROWS:][::-1]
    rows = [(
        f'<input type="checkbox" name="id" value="{_e(d.get("id"))}" '
        f'aria-label="re-drive {_e(d.get("id"))}">',
        _e(d.get("id")), _e(d.get("dead_lettered_at")), _e(d.get("reason")),
        _e(d.get("session_id")), _e(d.get("verb")), _e(d.get("attempts")), _e(d.get("error")),
    ) for d in recent]  # fmt: skip
    table = _table("dead-letters", ["", "id", "dead-lettered", "reason", "session", "verb",
                                    "tries", "error"], rows, "")  # fmt: skip
    return (
        f'{summary}<p class="note">The newest {len(recent)} of {len(letters)}.</p>'
        f'<form method="post" action="/admin/redrive" id="redrive">'
        f'<input type="hidden" name="form_token" value="{_e(form_token)}">{table}'
        '<label><input type="checkbox" name="force" value="1"> even if already answered'
        '</label> <button type="submit">Re-drive selected</button></form>'
    )


def render_page(data: AdminData, form_token: str) -> str:
    now = time.time()
    body = (
        f'<p class="muted">Gateway <code>{_e(data.gateway_id)}</code> · '
        f"{_e(time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(now)))}</p>"
        '<form method="post" action="/admin/logout" class="inline">'
        '<button type="submit">Sign out</button></form>'
        f"<h2>Sessions per gateway</h2>{render_sessions(data.sessions)}"
        f"<h2>Requests, errors, timeouts</h2>{render_rates(data.rates)}"
        f"<h2>Consumer lag (committed offsets)</h2>{render_lag(data.lag)}"
        f"<h2>Runners</h2>{render_runners(data.runners, now)}"
        f"<h2>Dead letters</h2>{render_dead_letters(data.dead_letters, form_token)}"
    )
    return _page("Sockethub admin", body)
