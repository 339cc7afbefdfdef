"""The Socket.IO events of the Sockethub protocol (spec section 2).

Every result and error goes back through the event's acknowledgement (the
handler's return value); platform events go out as ``message`` events.
"""

from __future__ import annotations

import sys
from typing import Any

import orjson
import structlog

from gateway.kafka_bridge import DeliveryError, KafkaBridge
from gateway.limits import RATE_LIMITED, TOO_MANY_CONNECTIONS, ConnectionCap, RateLimiter, Verdict
from gateway.metrics import GatewayMetrics
from gateway.packets import Refused
from gateway.requests import Reply, RequestTracker, send_answer
from gateway.sessions import Session, Sessions
from gateway.settings import GatewaySettings
from gateway.shaping import JSONDict, error_ack, error_event, result_ack
from gateway.transport.socketio_server import ACK_WANTED, FRAME_SIZE, SockethubServer
from gateway.validation import (
    ActivityError,
    ValidatedActivity,
    validate_activity_object,
    validate_credentials,
    validate_message,
)
from schemas.envelopes import PlatformEvent, Request, RequestKind
from schemas.platform_registry import PlatformRegistry, canonical_context
from schemas.topics import request_key
from sockethub.runtime.credentials import CredentialStore

log = structlog.get_logger("gateway.socket")
connection_log = structlog.get_logger("gateway.connection")

NOT_STORED = "Error: credentials could not be stored"
GATEWAY_ID_ACTOR = {"type": "service"}


def client_address(environ: dict[str, Any]) -> str:
    """The peer address from the ASGI scope (engine.io's REMOTE_ADDR is a placeholder)."""
    scope = environ.get("asgi.scope") or {}
    client = scope.get("client")
    if client:
        return str(client[0])
    return str(environ.get("REMOTE_ADDR", "unknown"))


def frame_size(payload: object) -> int:
    """The bytes the event's frame took on the wire; measured again where the transport
    did not say (the length of its compact JSON text)."""
    size = FRAME_SIZE.get()
    if size is not None:
        return size
    try:
        return len(orjson.dumps(payload))
    except TypeError:  # orjson's refusals: too deep, or not JSON
        return sys.maxsize


class ProtocolHandlers:
    """The protocol's events for one :class:`SockethubServer`, over one Kafka bridge and
    one credential store."""

    def __init__(
        self,
        sio: SockethubServer,
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
        self._requests = RequestTracker(bridge, metrics, settings.request_timeout)
        self._limiter = RateLimiter(settings.rate_limit, settings.rate_block_seconds)
        self._cap = ConnectionCap(settings.max_connections_per_ip)
        persistent = (registry.get(p) for p in registry.ids())
        self._persistent = frozenset(d.id for d in persistent if d is not None and d.persistent)
        sio.on("connect", self.connect)
        sio.on("disconnect", self.disconnect)
        sio.on("schemas", self.schemas)
        sio.on("credentials", self.credentials)
        sio.on_direct("message", self.message, self.message_ready)
        sio.on("activity-object", self.activity_object)
        sio.on_slow_reader(self.slow_reader)
        bridge.on_event(self.platform_event)

    # -- connection lifecycle ------------------------------------------------

    async def connect(self, sid: str, environ: dict[str, Any], auth: object = None) -> bool:
        """``always_connect`` is on: the client is already connected when this runs,
        so the cap's ``error`` event reaches it before the disconnect."""
        address = client_address(environ)
        # engine.io keeps the connect request's environ for the whole connection; its
        # "wsgi.input" wraps the handshake body in a class built per request. Nothing
        # reads it after the handshake.
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
        for request in session.requests:
            request.drop()
        self._requests.spawn(self._end_session(session))

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

    async def close(self) -> None:
        """Finish session clean-ups and answers that are under way (on shutdown)."""
        await self._requests.close()

    def slow_reader(self, sid: str, limit: int) -> None:
        """A session's outgoing queue overflowed; the transport disconnects it next."""
        self._metrics.slow_readers.inc()
        connection_log.warning(
            "slow_reader",
            session_id=sid,
            limit=limit,
            setting="SOCKETHUB_MAX_OUTBOUND_BYTES",
            action="disconnected",
        )

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

    def _over_inflight_bytes(self, session: Session, size: int) -> bool:
        if session.inflight_bytes + size <= self._settings.max_inflight_bytes_per_session:
            return False
        self._metrics.rejected.labels(reason="inflight_bytes").inc()
        return True

    def _inflight_bytes_error(self) -> str:
        limit = self._settings.max_inflight_bytes_per_session
        return (
            f"Error: too many bytes in flight for this session "
            f"(limit {limit}, SOCKETHUB_MAX_INFLIGHT_BYTES_PER_SESSION)"
        )

    def _refusal(self, args: tuple[object, ...] | list[Any]) -> JSONDict | None:
        """The error ack for an event whose payload the packet layer refused, if it did."""
        for arg in args:
            if isinstance(arg, Refused):
                self._metrics.rejected.labels(reason="payload_limit").inc()
                log.info("payload_refused", reason=arg.reason)
                return {"error": arg.reason}
        return None

    # -- events ----------------------------------------------------------------

    async def schemas(self, sid: str, *args: object) -> object:
        if await self._admit(sid) is None:
            return self._no_ack
        refusal = self._refusal(args)
        if refusal is not None:
            return refusal
        if ACK_WANTED.get():
            return self._registry.schemas_ack(args[0] if args else None)
        await self._sio.emit("schemas", self._registry.payload(), to=sid)
        return None

    async def activity_object(self, sid: str, payload: object = None, *_: object) -> object:
        session = await self._admit(sid)
        if session is None:
            return self._no_ack
        if isinstance(payload, Refused):
            self._refusal([payload])  # counted and logged
            return error_ack(None, payload.reason, "g2")
        size = frame_size(payload)
        limit = self._settings.max_object_bytes
        if size > limit:  # a frame the packet layer did not measure (binary attachments)
            self._metrics.rejected.labels(reason="payload_limit").inc()
            text = f"Error: activity-object larger than {limit} bytes (SOCKETHUB_MAX_OBJECT_BYTES)"
            return error_ack(None, text, "g2")
        async with session.lock:  # later messages of the session may name this object
            try:
                obj = validate_activity_object(payload)
            except ActivityError as err:
                return error_ack(payload, err.message, "g2")
            budget = self._settings.max_session_object_bytes
            if not session.remember_object(obj, size, budget):
                self._metrics.rejected.labels(reason="object_budget").inc()
                text = (
                    f"Error: this session's activity-objects would exceed {budget} bytes "
                    "(SOCKETHUB_MAX_SESSION_OBJECT_BYTES)"
                )
                return error_ack(None, text, "g2")
            return obj

    async def credentials(self, sid: str, payload: object = None, *_: object) -> object:
        session = await self._admit(sid)
        if session is None:
            return self._no_ack
        refusal = self._refusal([payload])
        if refusal is not None:
            return refusal
        if self._over_inflight(session):
            return error_ack(payload, self._inflight_error())
        session.inflight += 1
        try:
            async with session.lock:
                if session.closed:  # nobody to answer, and its credentials were cleared
                    return self._no_ack
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

    def message_ready(self, sid: str) -> bool:
        """True if a ``message`` of ``sid`` may run in the connection's reader now: no
        earlier event of the session holds or waits for its lock."""
        session = self.sessions.get(sid)
        return session is None or session.idle

    async def message(self, sid: str, args: list[Any], reply: Reply | None) -> None:
        """The ``message`` event: validate, produce, and answer through ``reply`` once the
        request's result, timeout or delivery failure comes (:mod:`gateway.requests`).

        Run by :class:`SockethubServer` in the connection's reader, or in a task when an
        earlier event of the session is still on its way to the session lock.
        """
        payload = args[0] if args else None
        try:
            session = await self._admit(sid)
            if session is None:
                return
            refused = self._refusal(args)
            if refused is not None:
                await send_answer(reply, refused)
                return
            if self._over_inflight(session):
                self._metrics.activity("unknown", "in", "limited")
                await send_answer(reply, error_ack(payload, self._inflight_error()))
                return
            size = frame_size(payload)
            if self._over_inflight_bytes(session, size):
                self._metrics.activity("unknown", "in", "limited")
                await send_answer(reply, error_ack(payload, self._inflight_bytes_error()))
                return
            session.inflight += 1
            session.inflight_bytes += size
            refusal = await self._submit(session, payload, reply, size)
            if refusal is not None:
                await send_answer(reply, refusal)
        except Exception:
            log.exception("message_failed", session_id=sid)

    async def _submit(
        self, session: Session, payload: object, reply: Reply | None, size: int
    ) -> JSONDict | None:
        """Produce the message's request: None once it is on its way, or the answer that
        refuses it. Holds the session's in-flight slot and ``size`` in-flight bytes, which
        the request takes over."""
        async with session.lock:
            try:
                prepared = None if session.closed else self._prepare(session, payload)
            except BaseException:
                session.inflight -= 1
                session.inflight_bytes -= size
                raise
            if prepared is None or isinstance(prepared, dict):
                session.inflight -= 1
                session.inflight_bytes -= size
                return prepared
            valid, request, key = prepared
            refusal = await self._requests.submit(
                session, request, key, payload, valid.dialect, reply, size
            )
            if refusal is None:
                session.used.add((valid.platform, key))
            return refusal

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
