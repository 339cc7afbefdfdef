"""A request that waits for Kafka, from its produce to its one answer.

Each accepted ``message`` event becomes a :class:`PendingRequest`, registered with the
bridge before its record is produced. Whichever of these comes first answers it:

- its result, read from this gateway's reply topic;
- its timeout (``request_timeout``);
- a failed delivery of its record;
- the end of its session (no acknowledgement: the client is gone).

Each of them first *claims* the request. Claiming is synchronous and succeeds once:
it takes the request out of the bridge's map and out of its session, cancels its timer
and frees its session's in-flight slot and bytes, so a request gets exactly one acknowledgement.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from gateway.kafka_bridge import DeliveryError
from gateway.metrics import GatewayMetrics
from gateway.sessions import Session
from gateway.shaping import Dialect, JSONDict, error_ack, result_ack
from schemas.envelopes import Request, Result

if TYPE_CHECKING:
    from sockethub.runtime.otel import Tracing

log = structlog.get_logger("gateway.requests")

NOT_QUEUED = "Error: the request could not be queued for the platform"

Reply = Callable[[JSONDict], Awaitable[None]]
"""Sends an answer as the event's acknowledgement."""


class Bridge(Protocol):
    """What the lifecycle uses of :class:`gateway.kafka_bridge.KafkaBridge`."""

    async def submit(self, pending: PendingRequest, key: str) -> None: ...

    def forget(self, activity_id: str) -> bool: ...


async def send_answer(reply: Reply | None, answer: JSONDict) -> None:
    """Acknowledge with ``answer``, if the client asked for an acknowledgement.

    A connection that closed meanwhile cannot take it: the answer is dropped.
    """
    if reply is None:
        return
    try:
        await reply(answer)
    except Exception as exc:
        log.info("ack_not_sent", error=type(exc).__name__)


class RequestTracker:
    """What every pending request shares: the bridge, the metrics, the timeout, and the
    background tasks (answers decided in timer and delivery callbacks, session
    clean-ups), which shutdown waits for."""

    def __init__(
        self,
        bridge: Bridge,
        metrics: GatewayMetrics,
        timeout: float,
        tracing: Tracing | None = None,
    ) -> None:
        self.bridge = bridge
        self.metrics = metrics
        self.timeout = timeout
        self.tracing = tracing
        """Spans when OpenTelemetry is on; None (the default) costs one test per request."""
        self._background: set[asyncio.Task[None]] = set()
        self.on_acked: Callable[[Session], Awaitable[None]] | None = None
        """Awaited right after a result went out as an acknowledgement, while its reply
        record is being dispatched: connection state recovery tells the client the record's
        position, so that a client that got the ack never has it delivered again."""
        self.holding_acks = False
        """Set when the gateway parks its sessions to stop: results are no longer acknowledged,
        so each is either acknowledged (with its position) before the transports close or
        left after the client's offset in the log, for the gateway that recovers the
        session."""
        self._acking = 0
        """Acknowledgements between their send and their position's: parking waits for them."""
        self._no_acking = asyncio.Event()
        self._no_acking.set()

    async def submit(
        self,
        session: Session,
        request: Request,
        key: str,
        payload: object,
        dialect: Dialect,
        reply: Reply | None,
        size: int = 0,
    ) -> JSONDict | None:
        """Produce ``request`` under ``key``; None once it is on its way (it is answered
        later, through ``reply``), or the answer that refuses it now.

        The caller's in-flight slot of ``session``, and the ``size`` bytes it counted in
        flight, pass to the request, which frees them when it is claimed.
        """
        if self.tracing is not None:
            return await self._submit_traced(
                self.tracing, session, request, key, payload, dialect, reply, size
            )
        pending = PendingRequest(self, session, request, payload, dialect, reply, size)
        return await self._produce(pending, key)

    async def _produce(self, pending: PendingRequest, key: str) -> JSONDict | None:
        request = pending.request
        try:
            await self.bridge.submit(pending, key)
        except DeliveryError:
            if not pending.claim():  # answered while the produce was under way
                return None
            self.metrics.activity(request.platform, "in", "error")
            return error_ack(pending.payload, NOT_QUEUED, pending.dialect)
        except BaseException:
            pending.claim()
            raise
        self.metrics.activity(request.platform, "in", "accepted")
        return None

    async def _submit_traced(
        self,
        tracing: Tracing,
        session: Session,
        request: Request,
        key: str,
        payload: object,
        dialect: Dialect,
        reply: Reply | None,
        size: int,
    ) -> JSONDict | None:
        """:meth:`submit` inside an accept span and a produce span; the record carries the
        produce span's context, so the runner's spans are its children."""
        attributes: dict[str, str | int | float | bool] = {
            "sockethub.platform": request.platform, "sockethub.verb": request.verb,
            "sockethub.activity_id": request.activity_id, "sockethub.session_id": session.sid,
        }  # fmt: skip
        accept = tracing.start("sockethub.gateway.accept", request.traceparent, attributes)
        produce = tracing.start("sockethub.gateway.produce", tracing.traceparent(accept),
                                attributes)  # fmt: skip
        request = dataclasses.replace(request, traceparent=tracing.traceparent(produce))
        pending = PendingRequest(self, session, request, payload, dialect, reply, size)
        refused: JSONDict | None = None
        try:
            refused = await self._produce(pending, key)
        except BaseException as exc:
            tracing.end(produce, exc)
            tracing.end(accept, exc)
            raise
        error = "not queued" if refused is not None else None
        tracing.end(produce, error)
        tracing.end(accept, error)
        return refused

    async def finish(
        self,
        pending: PendingRequest,
        outcome: str,
        answer: JSONDict,
        traceparent: str | None = None,
    ) -> None:
        """Count and send the answer of a claimed request. ``traceparent``: the result's
        (the runner's handle span), else the request's own, is the ack span's parent."""
        platform = pending.request.platform
        self.metrics.activity(platform, "out", outcome)
        self.metrics.observe_request(platform, time.monotonic() - pending.started)
        if self.tracing is None:
            await send_answer(pending.reply, answer)
            return
        ack = self.tracing.start(
            "sockethub.gateway.ack", traceparent or pending.request.traceparent,
            {"sockethub.platform": platform, "sockethub.outcome": outcome,
             "sockethub.activity_id": pending.request.activity_id},
        )  # fmt: skip
        try:
            await send_answer(pending.reply, answer)
        except BaseException as exc:
            self.tracing.end(ack, exc)
            raise
        self.tracing.end(ack, outcome if outcome in ("error", "timeout") else None)

    def finish_soon(self, pending: PendingRequest, outcome: str, answer: JSONDict) -> None:
        """:meth:`finish` from a callback that cannot await."""
        self.spawn(self.finish(pending, outcome, answer))

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def ack_started(self) -> None:
        self._acking += 1
        self._no_acking.clear()

    def ack_ended(self) -> None:
        self._acking -= 1
        if not self._acking:
            self._no_acking.set()

    async def hold_acks(self, wait: float) -> None:
        """Acknowledge no more results, and wait (``wait`` seconds at most) for those
        under way to be sent."""
        self.holding_acks = True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await self._no_acking.wait()

    async def close(self) -> None:
        """Let the background tasks finish (on shutdown)."""
        if self._background:
            await asyncio.wait(set(self._background), timeout=10)


class PendingRequest:
    """One produced request until its one answer (see the module docstring)."""

    __slots__ = (
        "_timer",
        "_tracker",
        "answered",
        "dialect",
        "payload",
        "reply",
        "request",
        "session",
        "size",
        "started",
    )

    def __init__(
        self,
        tracker: RequestTracker,
        session: Session,
        request: Request,
        payload: object,
        dialect: Dialect,
        reply: Reply | None,
        size: int = 0,
    ) -> None:
        self._tracker = tracker
        self.size = size
        self.session = session
        self.request = request
        self.payload = payload
        self.dialect: Dialect = dialect
        self.reply = reply
        self.answered = False
        self.started = time.monotonic()
        self._timer = asyncio.get_running_loop().call_later(tracker.timeout, self._expire)
        session.track(self)

    def claim(self) -> bool:
        """Take the right to answer; False if something else already has."""
        if self.answered:
            return False
        self.answered = True
        self._timer.cancel()
        self._tracker.bridge.forget(self.request.activity_id)
        self.session.untrack(self)
        self.session.inflight -= 1
        self.session.inflight_bytes -= self.size
        return True

    async def resolve(self, result: Result) -> None:
        """The request's result has come (called by the bridge's reply reader)."""
        if not self.claim():
            return
        outcome = "error" if result.error is not None else "ok"
        activity = result.activity
        if result.error is not None and "error" not in activity:
            activity = {**activity, "error": result.error}
        answer = result_ack(activity, self.request.platform, self.dialect, original=self.payload)
        tracker = self._tracker
        if tracker.holding_acks:
            log.debug("ack_held", activity_id=self.request.activity_id)
            return
        tracker.ack_started()
        try:
            await tracker.finish(self, outcome, answer, result.traceparent)
            if self.reply is not None and tracker.on_acked is not None:
                await tracker.on_acked(self.session)
        finally:
            tracker.ack_ended()

    def delivery_done(self, delivery: asyncio.Future[object]) -> None:
        """The record's delivery has settled; a failure answers the request now."""
        if delivery.cancelled() or delivery.exception() is None or not self.claim():
            return
        self._tracker.metrics.kafka_errors.inc()
        log.warning("request_delivery_failed", activity_id=self.request.activity_id)
        answer = error_ack(self.payload, NOT_QUEUED, self.dialect)
        self._tracker.finish_soon(self, "error", answer)

    def _expire(self) -> None:
        if not self.claim():
            return
        request = self.request
        timeout = self._tracker.timeout
        log.info(
            "request_timed_out",
            session_id=request.session_id,
            platform=request.platform,
            verb=request.verb,
            activity_id=request.activity_id,
        )
        error = f"Error: request timed out after {timeout:g} seconds"
        self._tracker.finish_soon(self, "timeout", error_ack(self.payload, error, self.dialect))

    def drop(self) -> None:
        """The session ended (or the gateway stops): nobody is left to answer."""
        if self.claim():
            log.debug("request_dropped", activity_id=self.request.activity_id)
