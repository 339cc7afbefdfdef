"""The Socket.IO events of the Sockethub protocol (spec section 2).

Every result and error goes back through the event's acknowledgement (the
handler's return value); platform events go out as ``message`` events.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import socketio
import structlog

from gateway.kafka_bridge import DeliveryError, KafkaBridge
from gateway.limits import RATE_LIMITED, TOO_MANY_CONNECTIONS, ConnectionCap, RateLimiter, Verdict
from gateway.metrics import GatewayMetrics
from gateway.sessions import Session, Sessions
from gateway.settings import GatewaySettings
from gateway.shaping import JSONDict, error_ack, error_event, result_ack
from gateway.transport.socketio_server import ACK_WANTED, SockethubServer
from gateway.validation import (
    ActivityError,
    ValidatedActivity,
    validate_activity_object,
    validate_credentials,
    validate_message,
)
from schemas.envelopes import PlatformEvent, Request, RequestKind, Result
from schemas.platform_registry import PlatformRegistry, canonical_context
from schemas.topics import request_key
from sockethub.runtime.credentials import CredentialStore

log = structlog.get_logger("gateway.socket")

NOT_STORED = "Error: credentials could not be stored"
NOT_QUEUED = "Error: the request could not be queued for the platform"
GATEWAY_ID_ACTOR = {"type": "service"}


class _DeliveryFailed(Exception):
    """The request's record could not be written to Kafka (set on its result future)."""


def _expire(waiter: asyncio.Future[Result]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


def _delivery_done(delivery: asyncio.Future[object], waiter: asyncio.Future[Result]) -> None:
    """A failed delivery answers the request at once, unless its result came first."""
    if waiter.done() or delivery.cancelled() or delivery.exception() is None:
        return
    waiter.set_exception(_DeliveryFailed())


def client_address(environ: dict[str, Any]) -> str:
    """The peer address from the ASGI scope (engine.io's REMOTE_ADDR is a placeholder)."""
    scope = environ.get("asgi.scope") or {}
    client = scope.get("client")
    if client:
        return str(client[0])
    return str(environ.get("REMOTE_ADDR", "unknown"))


class ProtocolHandlers:
    def __init__(
        self,
        sio: socketio.AsyncServer,
        settings: GatewaySettings,
        registry: PlatformRegistry,
        bridge: KafkaBridge,
        store: CredentialStore,
        metrics: GatewayMetrics,
    ) -> None:
        self._sio = sio
        self._no_ack: object = sio.not_handled
        """Returned by a handler to send no acknowledgement at all (a dropped event)."""
        self._settings = settings
        self._registry = registry
        self._bridge = bridge
        self._store = store
        self._metrics = metrics
        self.sessions = Sessions()
        self._limiter = RateLimiter(settings.rate_limit, settings.rate_block_seconds)
        self._cap = ConnectionCap(settings.max_connections_per_ip)
        self._background: set[asyncio.Task[None]] = set()
        persistent = (registry.get(p) for p in registry.ids())
        self._persistent = frozenset(d.id for d in persistent if d is not None and d.persistent)
        sio.on("connect", self.connect)
        sio.on("disconnect", self.disconnect)
        sio.on("schemas", self.schemas)
        sio.on("credentials", self.credentials)
        sio.on("message", self.message)
        if isinstance(sio, SockethubServer):
            sio.inline_message = self.message_inline
        sio.on("activity-object", self.activity_object)
        bridge.on_event(self.platform_event)

    # -- connection lifecycle ------------------------------------------------

    async def connect(self, sid: str, environ: dict[str, Any], auth: object = None) -> bool:
        """``always_connect`` is on: the client is already connected when this runs,
        so the cap's ``error`` event reaches it before the disconnect."""
        address = client_address(environ)
        # engine.io keeps the connect request's environ for the whole connection; its
        # "wsgi.input" wraps the handshake body in a class built per request (~2.6 KiB
        # per connection). Nothing reads it after the handshake.
        environ.pop("wsgi.input", None)
        if not self._cap.acquire(address):
            self._metrics.rejected.labels(reason="connection_cap").inc()
            log.warning("connection_refused_cap", address=address)
            await self._sio.emit("error", error_event(TOO_MANY_CONNECTIONS), to=sid)
            return False
        self.sessions.open(sid, address)
        self._metrics.connections.inc()
        log.info("session_connected", session_id=sid, address=address)
        return True

    async def disconnect(self, sid: str, reason: object = None) -> None:
        session = self.sessions.close(sid)
        if session is None:
            return
        self._cap.release(session.address)
        self._limiter.forget(sid)
        self._metrics.connections.dec()
        log.info("session_disconnected", session_id=sid, reason=str(reason))
        self._spawn(self._end_session(session))

    async def _end_session(self, session: Session) -> None:
        for platform, key in sorted(session.used):
            request = Request(
                session_id=session.sid,
                reply_route=self._bridge.reply_topic,
                platform=platform,
                verb="session_closed",
                activity={
                    "@context": canonical_context(platform),
                    "type": "session_closed",
                    "actor": {"id": session.sid, **GATEWAY_ID_ACTOR},
                },
                kind=RequestKind.SESSION_CLOSED,
            )
            try:
                await self._bridge.produce(self._bridge.layout.requests(platform), request, key)
            except DeliveryError:
                log.warning("session_closed_not_sent", session_id=session.sid, platform=platform)
        try:
            await self._store.end_session(
                session.sid, self._settings.session_grace, keep_platforms=self._persistent
            )
        except Exception as exc:
            log.warning("credentials_cleanup_failed", session_id=session.sid, error=str(exc))

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        """Finish session clean-ups that are under way (on shutdown)."""
        if self._background:
            await asyncio.wait(set(self._background), timeout=10)

    # -- admission -----------------------------------------------------------

    async def _admit(self, sid: str) -> Session | None:
        """The session, if this event may proceed under the rate limit."""
        session = self.sessions.get(sid)
        if session is None:
            return None
        verdict = self._limiter.check(sid)
        if verdict is Verdict.ALLOW:
            return session
        self._metrics.rejected.labels(reason="rate_limit").inc()
        if verdict is Verdict.BLOCK:
            log.warning("session_rate_limited", session_id=sid)
            await self._sio.emit("error", error_event(RATE_LIMITED), to=sid)
        return None

    def _over_inflight(self, session: Session) -> bool:
        if session.inflight < self._settings.max_inflight_per_session:
            return False
        self._metrics.rejected.labels(reason="inflight").inc()
        return True

    def _inflight_error(self) -> str:
        limit = self._settings.max_inflight_per_session
        return f"Error: too many requests in flight for this session (limit {limit})"

    # -- events ----------------------------------------------------------------

    async def schemas(self, sid: str, *args: object) -> object:
        if await self._admit(sid) is None:
            return self._no_ack
        if ACK_WANTED.get():
            return self._registry.schemas_ack(args[0] if args else None)
        await self._sio.emit("schemas", self._registry.payload(), to=sid)
        return None

    async def activity_object(self, sid: str, payload: object = None, *_: object) -> object:
        session = await self._admit(sid)
        if session is None:
            return self._no_ack
        async with session.lock:  # later messages of the session may name this object
            try:
                obj = validate_activity_object(payload)
            except ActivityError as err:
                return error_ack(payload, err.message, "g2")
            session.remember_object(obj)
            return obj

    async def credentials(self, sid: str, payload: object = None, *_: object) -> object:
        session = await self._admit(sid)
        if session is None:
            return self._no_ack
        if self._over_inflight(session):
            return error_ack(payload, self._inflight_error())
        session.inflight += 1
        try:
            async with session.lock:
                return await self._store_credentials(session, payload)
        finally:
            session.inflight -= 1

    async def _store_credentials(self, session: Session, payload: object) -> JSONDict:
        try:
            valid = validate_credentials(
                payload, self._registry, lookup_object=session.lookup_object
            )
        except ActivityError as err:
            self._metrics.activity("unknown", "in", "invalid")
            return error_ack(payload, err.message)
        session.dialect = valid.dialect
        actor = valid.activity["actor"]
        try:
            await self._store.put(session.sid, valid.platform, str(actor["id"]), valid.activity)
        except Exception as exc:
            log.error("credentials_store_failed", session_id=session.sid, error=type(exc).__name__)
            self._metrics.activity(valid.platform, "in", "error")
            return error_ack(payload, NOT_STORED, valid.dialect)
        persistent = valid.platform in self._persistent
        session.used.add(
            (valid.platform, request_key(session.sid, valid.activity, persistent=persistent))
        )
        self._metrics.activity(valid.platform, "in", "credentials")
        log.info(
            "credentials_set", session_id=session.sid, platform=valid.platform, actor=actor["id"]
        )
        await self._audit_credentials(session, valid)
        return result_ack(valid.activity, valid.platform, valid.dialect)

    async def _audit_credentials(self, session: Session, valid: ValidatedActivity) -> None:
        """Who set credentials for which platform, and when; never the secret."""
        actor = valid.activity["actor"]
        redacted = {
            "@context": valid.activity["@context"],
            "type": "credentials",
            "actor": {k: actor[k] for k in ("id", "type", "name") if k in actor},
            "object": {"type": "credentials"},
        }
        record = Request(
            session_id=session.sid,
            reply_route=self._bridge.reply_topic,
            platform=valid.platform,
            verb="credentials",
            activity=redacted,
            correlation_id=valid.correlation_id,
            kind=RequestKind.CREDENTIALS,
        )
        try:
            await self._bridge.produce(self._bridge.layout.audit(), record, session.sid)
        except DeliveryError:
            log.warning("credentials_audit_not_sent", session_id=session.sid)

    async def message(self, sid: str, payload: object = None, *_: object) -> object:
        session = await self._admit(sid)
        if session is None:
            return self._no_ack
        if self._over_inflight(session):
            self._metrics.activity("unknown", "in", "limited")
            return error_ack(payload, self._inflight_error())
        session.inflight += 1
        try:
            return await self._handle_message(session, payload)
        finally:
            session.inflight -= 1

    def _prepare(
        self, session: Session, payload: object
    ) -> tuple[ValidatedActivity, Request, str] | JSONDict:
        """The validated activity, its request and partition key, or the error ack."""
        try:
            valid = validate_message(payload, self._registry, lookup_object=session.lookup_object)
        except ActivityError as err:
            self._metrics.activity("unknown", "in", "invalid")
            return error_ack(payload, err.message)
        session.dialect = valid.dialect
        request = Request(
            session_id=session.sid,
            reply_route=self._bridge.reply_topic,
            platform=valid.platform,
            verb=valid.verb,
            activity=valid.activity,
            correlation_id=valid.correlation_id,
        )
        key = request_key(
            session.sid, valid.activity, persistent=valid.platform in self._persistent
        )
        return valid, request, key

    async def _handle_message(self, session: Session, payload: object) -> JSONDict:
        started = time.monotonic()
        async with session.lock:
            prepared = self._prepare(session, payload)
            if isinstance(prepared, dict):
                return prepared
            valid, request, key = prepared
            waiter: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
            try:
                delivery = await self._bridge.submit(request, key, waiter)
            except DeliveryError:
                self._metrics.activity(valid.platform, "in", "error")
                return error_ack(payload, NOT_QUEUED, valid.dialect)
            session.used.add((valid.platform, key))
        self._metrics.activity(valid.platform, "in", "accepted")
        try:
            outcome, answer = await self._await_result(request, waiter, delivery, payload, valid)
        finally:
            self._bridge.forget(request.activity_id)
        self._metrics.activity(valid.platform, "out", outcome)
        self._metrics.observe_request(valid.platform, time.monotonic() - started)
        return answer

    async def _await_result(
        self,
        request: Request,
        waiter: asyncio.Future[Result],
        delivery: asyncio.Future[object],
        payload: object,
        valid: ValidatedActivity,
    ) -> tuple[str, JSONDict]:
        timeout = self._settings.request_timeout
        # One timer and one callback per request instead of asyncio.timeout + asyncio.wait
        # (which wraps both futures in a fresh set, callbacks and a waiter each time).
        handle = asyncio.get_running_loop().call_later(timeout, _expire, waiter)
        delivery.add_done_callback(lambda done: _delivery_done(done, waiter))
        try:
            result = await waiter
        except _DeliveryFailed:
            self._metrics.kafka_errors.inc()
            log.warning("request_delivery_failed", activity_id=request.activity_id)
            return "error", error_ack(payload, NOT_QUEUED, valid.dialect)
        except TimeoutError:
            return "timeout", _timed_out(request, payload, valid, timeout)
        finally:
            handle.cancel()
        return _result_answer(result, payload, valid)

    # -- message events without a task (see SockethubServer) --------------------

    async def message_inline(
        self, sid: str, eio_sid: str, ack_id: int | None, args: list[Any]
    ) -> bool:
        """The ``message`` handler, run in the connection's reader: validate and produce
        now; the reply consumer sends the ack. False: the session lock is taken, so
        the event takes the task path (:meth:`message`) behind the lock's holder."""
        session = self.sessions.get(sid)
        if session is not None:
            lock = session.lock
            if lock.locked() or lock._waiters:
                return False
        payload = args[0] if args else None
        try:
            await self._message_inline(sid, eio_sid, ack_id, payload)
        except Exception:
            log.exception("message_failed", session_id=sid)
        return True

    async def _message_inline(
        self, sid: str, eio_sid: str, ack_id: int | None, payload: object
    ) -> None:
        session = await self._admit(sid)
        if session is None:
            return
        if self._over_inflight(session):
            self._metrics.activity("unknown", "in", "limited")
            await self._ack(eio_sid, ack_id, error_ack(payload, self._inflight_error()))
            return
        session.inflight += 1
        try:
            refusal = await self._submit_inline(session, eio_sid, ack_id, payload)
        except BaseException:
            session.inflight -= 1
            raise
        if refusal is not None:
            session.inflight -= 1
            await self._ack(eio_sid, ack_id, refusal)

    async def _submit_inline(
        self, session: Session, eio_sid: str, ack_id: int | None, payload: object
    ) -> JSONDict | None:
        """Produce the request (None), or the error ack that refuses it."""
        started = time.monotonic()
        prepared = self._prepare(session, payload)
        if isinstance(prepared, dict):
            return prepared
        valid, request, key = prepared
        pending = _InlineRequest(self, session, payload, valid, request, started, eio_sid, ack_id)
        try:
            delivery = await self._bridge.submit(request, key, pending.on_result)
        except DeliveryError:
            pending.timer.cancel()
            self._metrics.activity(valid.platform, "in", "error")
            return error_ack(payload, NOT_QUEUED, valid.dialect)
        session.used.add((valid.platform, key))
        self._metrics.activity(valid.platform, "in", "accepted")
        delivery.add_done_callback(pending.delivery_done)
        return None

    async def _finish_inline(self, pending: _InlineRequest, outcome: str, answer: JSONDict) -> None:
        pending.session.inflight -= 1
        platform = pending.valid.platform
        self._metrics.activity(platform, "out", outcome)
        self._metrics.observe_request(platform, time.monotonic() - pending.started)
        await self._ack(pending.eio_sid, pending.ack_id, answer)

    async def _ack(self, eio_sid: str, ack_id: int | None, answer: JSONDict) -> None:
        if ack_id is not None:
            sio: SockethubServer = self._sio
            await sio.send_ack(eio_sid, ack_id, answer)

    async def platform_event(self, event: PlatformEvent) -> None:
        session = self.sessions.get(event.session_id)
        if session is None:
            log.info("platform_event_for_gone_session", session_id=event.session_id)
            return
        activity = event.activity
        if event.error is not None and "error" not in activity:
            activity = {**activity, "error": event.error}
        self._metrics.activity(event.platform, "out", "event")
        await self._sio.emit(
            "message", result_ack(activity, event.platform, session.dialect), to=event.session_id
        )


def _timed_out(
    request: Request, payload: object, valid: ValidatedActivity, timeout: float
) -> JSONDict:
    log.info(
        "request_timed_out",
        session_id=request.session_id,
        platform=request.platform,
        verb=request.verb,
        activity_id=request.activity_id,
    )
    return error_ack(payload, f"Error: request timed out after {timeout:g} seconds", valid.dialect)


def _result_answer(
    result: Result, payload: object, valid: ValidatedActivity
) -> tuple[str, JSONDict]:
    """The outcome label and the ack for a platform's result."""
    outcome = "error" if result.error is not None else "ok"
    activity = result.activity
    if result.error is not None and "error" not in activity:
        activity = {**activity, "error": result.error}
    return outcome, result_ack(activity, valid.platform, valid.dialect, original=payload)


class _InlineRequest:
    """A request produced by :meth:`ProtocolHandlers.message_inline`, until its answer.

    Exactly one of the result (awaited by the reply consumer), the timeout timer and
    a failed delivery answers it: whichever takes it out of the bridge's pending map.
    """

    __slots__ = (
        "ack_id",
        "eio_sid",
        "handlers",
        "payload",
        "request",
        "session",
        "started",
        "timer",
        "valid",
    )

    def __init__(
        self,
        handlers: ProtocolHandlers,
        session: Session,
        payload: object,
        valid: ValidatedActivity,
        request: Request,
        started: float,
        eio_sid: str,
        ack_id: int | None,
    ) -> None:
        self.handlers = handlers
        self.session = session
        self.payload = payload
        self.valid = valid
        self.request = request
        self.started = started
        self.eio_sid = eio_sid
        self.ack_id = ack_id
        timeout = handlers._settings.request_timeout
        self.timer = asyncio.get_running_loop().call_later(timeout, self.expire)

    async def on_result(self, result: Result) -> None:
        self.timer.cancel()
        outcome, answer = _result_answer(result, self.payload, self.valid)
        await self.handlers._finish_inline(self, outcome, answer)

    def expire(self) -> None:
        handlers, request = self.handlers, self.request
        if not handlers._bridge.forget(request.activity_id):
            return
        timeout = handlers._settings.request_timeout
        answer = _timed_out(request, self.payload, self.valid, timeout)
        handlers._spawn(handlers._finish_inline(self, "timeout", answer))

    def delivery_done(self, delivery: asyncio.Future[object]) -> None:
        if delivery.cancelled() or delivery.exception() is None:
            return
        handlers = self.handlers
        if not handlers._bridge.forget(self.request.activity_id):
            return
        self.timer.cancel()
        handlers._metrics.kafka_errors.inc()
        log.warning("request_delivery_failed", activity_id=self.request.activity_id)
        answer = error_ack(self.payload, NOT_QUEUED, self.valid.dialect)
        handlers._spawn(handlers._finish_inline(self, "error", answer))
