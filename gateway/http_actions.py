"""HTTP actions: a batch of activities in one ``POST``, the results back as NDJSON.

The second way in beside Socket.IO (off unless ``SOCKETHUB_HTTP_ACTIONS``). A request
is a short-lived session of its own (``http:<16 alnum>``) whose payloads take the
Socket.IO events' path: the same validation, the same credential store, the same Kafka
bridge and request lifecycle (:mod:`gateway.requests`), the same rate limit, connection
cap, origins and client-address rules. So every activity lands in the log and in
``sockethub replay`` like any other.

Invariants:

- One line per payload, in the payloads' order (not completion order): a client pairs
  lines with payloads by position, and a replay is the same bytes as the first answer.
- A request id names its activities: activity ``i`` of request id ``r`` gets an
  activity id derived from both, so a retry can never make a runner do the work twice
  (a runner skips an activity id it has answered), and the results of a finished
  request are kept in Redis and replayed for a retry; a retry while it runs waits for
  them.
- Every error is a JSON body: never an HTML page.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import math
import re
import secrets
import string
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from redis.asyncio import Redis
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from gateway.client_address import ClientAddress, parse_networks
from gateway.limits import RATE_LIMITED, TOO_MANY_CONNECTIONS
from gateway.packets import loads
from gateway.sessions import Session
from gateway.settings import GatewaySettings
from gateway.shaping import ERROR_EVENT_ACTOR, JSONDict
from schemas.platform_registry import BASE_CONTEXT_URLS, context_url

if TYPE_CHECKING:
    from gateway.socket_handlers import ProtocolHandlers

log = structlog.get_logger("gateway.http")

NOT_PAYLOADS = "request body must be a payload object or array of payloads"
NOT_JSON = "request body is not valid JSON"
TOO_DEEP = "request body is nested too deeply"
ID_REQUIRED = "requestId is required"
ID_CHARACTERS = "requestId contains invalid characters"
UNSUPPORTED = "unsupported payload type"
REQUEST_TIMEOUT = "request timeout"
IN_PROGRESS = "request already in progress"
NOT_FOUND = "request not found"
STORE_DOWN = "idempotency store unavailable"
UNAUTHORIZED = "missing or invalid bearer token"
ORIGIN_REFUSED = "origin not allowed"
METHOD_REFUSED = "method not allowed"
INVALID_CREDENTIALS = "invalid credentials payload"

MAX_REQUEST_ID = 128
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]+")
NDJSON = "application/x-ndjson"
REPLAY_POLL_S = 0.2
"""How often a retry of a running request looks for its results."""
ANY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_ALNUM = string.ascii_letters + string.digits


class BodyError(Exception):
    """A request refused before any of its payloads ran: its status and JSON error."""

    def __init__(
        self, status: int, message: str, headers: dict[str, str] | None = None, **extra: object
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.extra = extra

    def response(self, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse(
            {"error": self.message, **self.extra},
            status_code=self.status,
            headers={**(headers or {}), **self.headers},
        )


def internal_context() -> list[str]:
    return [*BASE_CONTEXT_URLS, context_url("sockethub:internal")]


def error_line(text: str, request_id: str) -> JSONDict:
    """The line of a payload the server itself answers (unsupported, timed out)."""
    return {
        "type": "error",
        "@context": [*BASE_CONTEXT_URLS, context_url("error")],
        "actor": dict(ERROR_EVENT_ACTOR),
        "error": text,
        "requestId": request_id,
    }


def credentials_line(payload: object, ack: JSONDict, request_id: str) -> JSONDict:
    """A credentials payload's line: who, and the error if it was refused; never the
    secrets (the Socket.IO acknowledgement echoes the activity)."""
    actor = payload.get("actor") if isinstance(payload, dict) else None
    actor_id = actor.get("id") if isinstance(actor, dict) else None
    error = ack.get("error")
    if not isinstance(actor_id, str):
        return error_line(error if isinstance(error, str) else INVALID_CREDENTIALS, request_id)
    line: JSONDict = {
        "@context": internal_context(),
        "type": "credentials-ack",
        "actor": {"id": actor_id, "type": "person"},
    }
    if isinstance(error, str):
        line["error"] = error
    return line


def is_activity(payload: object) -> bool:
    """What goes to the credentials or the message chain: an object with ``type`` and
    ``actor`` (the rest gets an ``unsupported payload type`` line)."""
    return isinstance(payload, dict) and "type" in payload and "actor" in payload


def is_credentials(payload: object) -> bool:
    return isinstance(payload, dict) and is_activity(payload) and payload["type"] == "credentials"


def too_deep(value: object, limit: int) -> bool:
    """More than ``limit`` levels of nested objects and arrays (walked without recursion)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False


@dataclass(frozen=True)
class Batch:
    payloads: list[object]
    body_request_id: str | None


def parse_body(body: bytes, content_type: str, *, max_messages: int, max_depth: int) -> Batch:
    """The payloads of a body (one activity, an array, or ``{"requestId", "messages"}``),
    or :class:`BodyError` in the order of the checks: type, JSON, emptiness, count."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media != "application/json":
        raise BodyError(400, NOT_PAYLOADS)
    try:
        value = loads(body)
    except ValueError:  # orjson's and json's decode errors (and orjson's depth cap)
        raise BodyError(400, NOT_JSON) from None
    except RecursionError:
        raise BodyError(400, TOO_DEEP) from None
    if too_deep(value, max_depth):
        raise BodyError(400, TOO_DEEP)
    request_id: str | None = None
    if isinstance(value, dict) and "type" not in value and isinstance(value.get("messages"), list):
        found = value.get("requestId")
        request_id = found if isinstance(found, str) else None
        value = value["messages"]
    if isinstance(value, dict):
        payloads: list[object] = [value]
    elif isinstance(value, list) and value:
        payloads = value
    else:
        raise BodyError(400, NOT_PAYLOADS)
    if len(payloads) > max_messages:
        raise BodyError(413, f"payload limit exceeded (max {max_messages})")
    return Batch(payloads, request_id)


def pick_request_id(headers: Any, body_id: str | None, *, required: bool) -> str | None:
    """``X-Request-Id``, else ``X-Sockethub-Request-Id``, else the body's; trimmed, blank
    is absent. None when absent and not required."""
    for candidate in (
        headers.get("x-request-id"),
        headers.get("x-sockethub-request-id"),
        body_id,
    ):
        if isinstance(candidate, str) and candidate.strip():
            request_id = candidate.strip()
            break
    else:
        if required:
            raise BodyError(400, ID_REQUIRED)
        return None
    if len(request_id) > MAX_REQUEST_ID:
        raise BodyError(400, f"requestId must be at most {MAX_REQUEST_ID} characters")
    if not REQUEST_ID.fullmatch(request_id):
        raise BodyError(400, ID_CHARACTERS)
    return request_id


def activity_id(prefix: str, request_id: str, index: int) -> str:
    """The activity id of payload ``index`` of request ``request_id``: the same on every
    retry, so runners that answered it once skip it."""
    digest = hashlib.sha256(f"{prefix}\0http\0{request_id}\0{index}".encode()).hexdigest()
    return digest[:32]


def new_id(length: int = 16) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(length))


class OrderedLines:
    """Slots filled in any order, read in index order: completion order in, request
    order out."""

    def __init__(self, count: int) -> None:
        loop = asyncio.get_running_loop()
        self._slots: list[asyncio.Future[JSONDict]] = [loop.create_future() for _ in range(count)]

    def __len__(self) -> int:
        return len(self._slots)

    def filled(self, index: int) -> bool:
        return self._slots[index].done()

    def fill(self, index: int, line: JSONDict) -> bool:
        """False if the slot already had its line (a payload is answered once)."""
        slot = self._slots[index]
        if slot.done():
            return False
        slot.set_result(line)
        return True

    def filler(self, index: int) -> Callable[[JSONDict], Awaitable[None]]:
        async def fill(line: JSONDict) -> None:
            self.fill(index, line)

        return fill

    async def lines(
        self, deadline: float, expired: Callable[[], JSONDict]
    ) -> AsyncIterator[JSONDict]:
        """Each slot's line in order; slots still empty at ``deadline`` (loop time) get
        ``expired()``."""
        loop = asyncio.get_running_loop()
        for slot in self._slots:
            if not slot.done():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(slot), max(deadline - loop.time(), 0))
            if not slot.done():
                slot.set_result(expired())
            yield slot.result()


class IdempotencyStore:
    """A request id's status (``in-progress``, then ``complete``) and its NDJSON lines."""

    def __init__(self, redis: Redis, prefix: str, ttl: int, lease: int) -> None:
        self._redis = redis
        self._prefix = f"{prefix}:http-actions"
        self._ttl = ttl
        self._lease = lease
        """Seconds an in-progress mark outlives its gateway (a crash leaves it behind)."""

    def _status(self, request_id: str) -> str:
        return f"{self._prefix}:status:{request_id}"

    def _results(self, request_id: str) -> str:
        return f"{self._prefix}:results:{request_id}"

    async def claim(self, request_id: str) -> str:
        """``claimed`` (this caller runs it), else ``in-progress`` or ``complete``."""
        while True:
            if await self._redis.set(
                self._status(request_id), "in-progress", nx=True, ex=self._lease
            ):
                await self._redis.delete(self._results(request_id))  # a crashed run's lines
                return "claimed"
            status = await self.status(request_id)
            if status is not None:
                return status

    async def status(self, request_id: str) -> str | None:
        value = await self._redis.get(self._status(request_id))
        return None if value is None else value.decode() if isinstance(value, bytes) else str(value)

    async def append(self, request_id: str, line: bytes) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.rpush(self._results(request_id), line)
            pipe.expire(self._results(request_id), self._lease)
            await pipe.execute()

    async def complete(self, request_id: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._status(request_id), "complete", ex=self._ttl)
            pipe.expire(self._results(request_id), self._ttl)
            await pipe.execute()

    async def release(self, request_id: str) -> None:
        """Give a claim back (the request could not run): a retry may run it."""
        await self._redis.delete(self._status(request_id), self._results(request_id))

    async def lines(self, request_id: str) -> list[bytes]:
        found = await self._redis.lrange(self._results(request_id), 0, -1)
        return [line if isinstance(line, bytes) else line.encode() for line in found]


CORS_HEADERS = {
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": (
        "Authorization, Content-Type, X-Request-Id, X-Sockethub-Request-Id"
    ),
    "Access-Control-Expose-Headers": "X-Request-Id, X-Idempotent-Replay, X-Sockethub-Session",
    "Access-Control-Max-Age": "600",
}


class HttpActions:
    """The routes of HTTP actions, over the gateway's protocol handlers and Redis."""

    def __init__(self, settings: GatewaySettings, handlers: ProtocolHandlers, redis: Redis) -> None:
        self._settings = settings
        self._handlers = handlers
        # The whole request's bound: credentials, produce, then each activity's own
        # request_timeout; an in-progress mark of a crashed gateway expires after it.
        self._limit = settings.request_timeout * 2 + 10
        self._store = IdempotencyStore(
            redis,
            settings.topic_prefix,
            settings.http_actions_idempotency_ttl,
            int(self._limit) + 30,
        )
        self._client = ClientAddress(
            parse_networks(settings.trusted_proxies), settings.forwarded_header
        )
        token = settings.http_actions_token
        self._token = None if token is None else token.get_secret_value().encode()
        self._tasks: set[asyncio.Task[None]] = set()

    def routes(self) -> list[Route]:
        path = "/" + self._settings.http_actions_path.strip("/")
        # Every method reaches the handlers, which refuse the others in JSON (Starlette's
        # own 405 is plain text).
        return [
            Route(path, self.collection, methods=ANY_METHOD),
            Route(path + "/{request_id}", self.item, methods=ANY_METHOD),
        ]

    async def close(self) -> None:
        """Let running requests finish (their results are recorded for retries)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=10)

    # -- checks --------------------------------------------------------------------

    def _cors(self, request: Request) -> dict[str, str]:
        """The CORS headers for this caller; :class:`BodyError` for an origin Socket.IO
        would refuse too (requests without ``Origin`` are not from a browser page)."""
        origin = request.headers.get("origin")
        allowed = self._settings.origins()
        headers = dict(CORS_HEADERS)
        if allowed == "*":
            headers["Access-Control-Allow-Origin"] = "*"
        elif origin is not None:
            if origin not in allowed:
                raise BodyError(403, ORIGIN_REFUSED)
            headers["Access-Control-Allow-Origin"] = origin
            headers["Vary"] = "Origin"
        return headers

    def _authorized(self, request: Request) -> bool:
        if self._token is None:
            return True
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(given.strip().encode(), self._token)

    async def _body(self, request: Request) -> bytes:
        """The body, refused (413) as soon as it is known to be over ``max_payload``."""
        limit = self._settings.max_payload
        too_big = BodyError(413, f"request body larger than {limit} bytes (SOCKETHUB_MAX_PAYLOAD)")
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise too_big
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise too_big
                chunks.append(chunk)
        except ClientDisconnect:
            raise BodyError(400, "request body incomplete") from None
        return b"".join(chunks)

    def _rate_limited(self, seconds: float) -> BodyError:
        return BodyError(429, RATE_LIMITED, {"Retry-After": str(max(math.ceil(seconds), 1))})

    # -- routes --------------------------------------------------------------------

    async def collection(self, request: Request) -> Response:
        headers: dict[str, str] = {}
        try:
            headers = self._cors(request)
            if request.method == "OPTIONS":
                return Response(status_code=204, headers=headers)
            if request.method == "GET":
                request_id = request.query_params.get("requestId")
                return await self._lookup(request, request_id, headers)
            if request.method != "POST":
                raise BodyError(405, METHOD_REFUSED)
            return await self._post(request, headers)
        except BodyError as err:
            return err.response(headers)

    async def item(self, request: Request) -> Response:
        headers: dict[str, str] = {}
        try:
            headers = self._cors(request)
            if request.method == "OPTIONS":
                return Response(status_code=204, headers=headers)
            if request.method != "GET":
                raise BodyError(405, METHOD_REFUSED)
            return await self._lookup(request, request.path_params["request_id"], headers)
        except BodyError as err:
            return err.response(headers)

    async def _lookup(
        self, request: Request, request_id: str | None, headers: dict[str, str]
    ) -> Response:
        """``GET``: a finished request's lines, or whether it still runs."""
        await self._admit(request)
        request_id = pick_request_id({}, request_id, required=True)
        assert request_id is not None
        try:
            status = await self._store.status(request_id)
            lines = await self._store.lines(request_id) if status == "complete" else []
        except Exception as exc:
            log.warning("http_idempotency_store_failed", error=type(exc).__name__)
            raise BodyError(503, STORE_DOWN) from None
        if status == "in-progress":
            return JSONResponse(
                {"status": "in-progress", "requestId": request_id}, status_code=202, headers=headers
            )
        if status != "complete":
            raise BodyError(404, NOT_FOUND, requestId=request_id)
        return self._replay(lines, request_id, headers)

    async def _admit(self, request: Request) -> str:
        """The client's address, once its rate and token are checked (raises BodyError)."""
        address = self._client.resolve(
            request.client.host if request.client else "unknown", request.headers.raw
        )
        allowed, left = await self._handlers.http_admit(address)
        if not allowed:
            raise self._rate_limited(left)
        if not self._authorized(request):
            raise BodyError(401, UNAUTHORIZED, {"WWW-Authenticate": "Bearer"})
        return address

    def _replay(self, lines: list[bytes], request_id: str, headers: dict[str, str]) -> Response:
        return Response(
            b"".join(lines),
            media_type=NDJSON,
            headers={
                **headers,
                **self._stream_headers(request_id),
                "X-Idempotent-Replay": "true",
            },
        )

    @staticmethod
    def _stream_headers(request_id: str) -> dict[str, str]:
        return {
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
            "X-Request-Id": request_id,
        }

    async def _post(self, request: Request, headers: dict[str, str]) -> Response:
        settings = self._settings
        address = await self._admit(request)
        body = await self._body(request)
        batch = parse_body(
            body,
            request.headers.get("content-type", ""),
            max_messages=settings.http_actions_max_messages,
            max_depth=settings.max_depth,
        )
        # Every payload is an event under the rate limit, as it is over Socket.IO.
        allowed, left = await self._handlers.http_admit(address, len(batch.payloads) - 1)
        if not allowed:
            raise self._rate_limited(left)
        given = pick_request_id(
            request.headers,
            batch.body_request_id,
            required=settings.http_actions_require_request_id,
        )
        request_id = given or new_id()
        if given is not None:
            try:
                status = await self._store.claim(given)
            except Exception as exc:
                log.warning("http_idempotency_store_failed", error=type(exc).__name__)
                raise BodyError(503, STORE_DOWN) from None
            if status != "claimed":
                return await self._retry(given, status, headers)
        key, admitted = await self._handlers.http_open(address)
        if not admitted:  # not counted: nothing to release
            if given is not None:
                with contextlib.suppress(Exception):
                    await self._store.release(given)
            raise BodyError(429, TOO_MANY_CONNECTIONS, {"Retry-After": "1"})
        sid = f"http:{new_id()}"
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        task = asyncio.create_task(
            self._run(sid, address, key, batch.payloads, request_id, given is not None, queue)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        log.info(
            "http_request_accepted",
            session_id=sid,
            address=address,
            payloads=len(batch.payloads),
            idempotent=given is not None,
        )

        async def stream() -> AsyncIterator[bytes]:
            # A client that goes away stops only this reader: the run goes on, and its
            # results are kept for a retry.
            while (line := await queue.get()) is not None:
                yield line

        return StreamingResponse(
            stream(),
            media_type=NDJSON,
            headers={**headers, **self._stream_headers(request_id), "X-Sockethub-Session": sid},
        )

    async def _retry(self, request_id: str, status: str, headers: dict[str, str]) -> Response:
        """A request id seen before: its stored lines, once its first run has finished."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._limit + 5
        try:
            while status == "in-progress" and loop.time() < deadline:
                await asyncio.sleep(REPLAY_POLL_S)
                status = await self._store.status(request_id) or "gone"
            if status == "complete":
                return self._replay(await self._store.lines(request_id), request_id, headers)
        except Exception as exc:
            log.warning("http_idempotency_store_failed", error=type(exc).__name__)
            raise BodyError(503, STORE_DOWN) from None
        # Still running past its own limit, or its gateway died: its activities may have
        # run, so they are not run again from here.
        raise BodyError(409, IN_PROGRESS, requestId=request_id)

    async def _run(
        self,
        sid: str,
        address: str,
        key: str,
        payloads: list[object],
        request_id: str,
        idempotent: bool,
        out: asyncio.Queue[bytes | None],
    ) -> None:
        """Run the payloads (credentials first, one at a time; then every message at
        once) and hand their lines to ``out`` in payload order."""
        handlers = self._handlers
        session = Session(sid, address)
        lines = OrderedLines(len(payloads))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._limit
        recorded = idempotent
        try:
            try:
                for index, payload in enumerate(payloads):
                    if is_credentials(payload):
                        ack = await handlers.http_credentials(session, payload)
                        lines.fill(index, credentials_line(payload, ack, request_id))
                for index, payload in enumerate(payloads):
                    if lines.filled(index):
                        continue
                    if not is_activity(payload):
                        lines.fill(index, error_line(UNSUPPORTED, request_id))
                        continue
                    ident = activity_id(self._settings.topic_prefix, request_id, index)
                    await handlers.http_message(session, payload, lines.filler(index), ident)
            except Exception:
                log.exception("http_request_failed", session_id=sid)
            async for line in lines.lines(
                deadline, lambda: error_line(REQUEST_TIMEOUT, request_id)
            ):
                data = orjson.dumps(line) + b"\n"
                if recorded:
                    try:
                        await self._store.append(request_id, data)
                    except Exception as exc:
                        recorded = False  # the in-progress mark expires; retries get 409
                        log.warning("http_idempotency_store_failed", error=type(exc).__name__)
                out.put_nowait(data)
            if recorded:
                try:
                    await self._store.complete(request_id)
                except Exception as exc:
                    log.warning("http_idempotency_store_failed", error=type(exc).__name__)
        finally:
            out.put_nowait(None)
            try:
                await handlers.http_close(key, session)
            except Exception:
                log.exception("http_request_cleanup_failed", session_id=sid)
            log.info("http_request_done", session_id=sid)
