"""One IRC connection over asyncio: TLS, registration (PASS, SASL PLAIN), PING/PONG, and
request/response matching on top of a line stream.

A command whose outcome the caller needs (JOIN, NICK, NAMES, ...) is sent
with :meth:`IrcClient.request` and a *matcher* that looks at each incoming
message and says whether it belongs to that command: not mine (None), mine
and more to come (:data:`MORE`), done (:data:`DONE`), or failed (an
:class:`IrcError`). Messages that no matcher claims go to ``on_message``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

import structlog

from platform_runners.address_guard import GuardError, OutboundGuard
from platform_runners.irc.message import Message, casefold, format_line, parse

log = structlog.get_logger("platform_runners.irc.client")


class Claim(Enum):
    MORE = "more"
    DONE = "done"


MORE = Claim.MORE
DONE = Claim.DONE
Matcher = Callable[[Message], Claim | Exception | None]

REGISTRATION_ERRORS = {
    "431": "no nickname given",
    "432": "erroneous nickname {nick}",
    "433": "nickname {nick} is already in use",
    "436": "nickname collision for {nick}",
    "437": "nickname {nick} is temporarily unavailable",
    "464": "password incorrect",
    "465": "you are banned from this server",
    "904": "SASL authentication failed",
    "905": "SASL authentication failed (message too long)",
    "906": "SASL authentication aborted",
    "908": "SASL mechanism not supported by the server",
}


class IrcError(Exception):
    """The server refused something; ``str()`` is a client-facing text without secrets."""

    def __init__(self, text: str, code: str = "") -> None:
        super().__init__(text)
        self.code = code


class ConnectionLost(IrcError):
    """The connection closed (or never opened)."""


@dataclass(slots=True)
class IrcConfig:
    host: str
    port: int
    nick: str
    username: str
    realname: str
    secure: bool = False
    password: str | None = field(default=None, repr=False)
    """Server password (PASS); with ``sasl`` it is the SASL password instead."""
    sasl: bool = False
    sasl_mechanism: str = "PLAIN"
    """``PLAIN`` (password) or ``OAUTHBEARER`` (``password`` holds the token)."""
    tls_verify: bool = True
    ca_file: str | None = None
    timeout: float = 30.0
    guard: OutboundGuard = field(default_factory=OutboundGuard, repr=False, compare=False)
    """Vets the server's addresses before any connection (the runner's allow-list)."""


class IrcClient:
    def __init__(
        self,
        config: IrcConfig,
        on_message: Callable[[Message], None] | None = None,
    ) -> None:
        self.config = config
        self.nick = config.nick
        self.server_name = config.host
        self.on_message = on_message
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._waiters: list[tuple[Matcher, asyncio.Future[list[Message]], list[Message]]] = []
        self._reading: asyncio.Task[None] | None = None
        self._tokens = itertools.count(1)
        self.closed: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        """Resolves with the reason once the connection is gone."""
        self._quitting = False

    # -- connection ---------------------------------------------------------------------------

    def _ssl_context(self) -> ssl.SSLContext | None:
        if not self.config.secure:
            return None
        context = ssl.create_default_context(cafile=self.config.ca_file)
        if not self.config.tls_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    async def connect(self) -> None:
        """Open and register; raises IrcError (ConnectionLost when unreachable or refused).

        The guard vets the server before anything is dialled, so a refused address gives
        the same text whether its port is open, closed or filtered.
        """
        cfg = self.config
        where = f"{cfg.host}:{cfg.port}"
        try:
            addresses = await cfg.guard.vet(cfg.host, cfg.port)
        except GuardError as exc:
            raise ConnectionLost(str(exc)) from None
        reason = "no address"
        for address in addresses:
            try:
                async with asyncio.timeout(cfg.timeout):
                    # Pinned to the vetted address; TLS still checks the name the client gave.
                    self._reader, self._writer = await asyncio.open_connection(
                        address,
                        cfg.port,
                        ssl=self._ssl_context(),
                        server_hostname=cfg.host if cfg.secure else None,
                    )
                break
            except (OSError, TimeoutError) as exc:
                reason = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
                if isinstance(exc, ssl.SSLError):
                    reason = f"TLS failed ({exc.reason or 'handshake'})"
                elif isinstance(exc, ConnectionRefusedError):
                    reason = "connection refused"
        else:
            raise ConnectionLost(f"cannot connect to {where}: {reason}")
        self._reading = asyncio.create_task(self._read_loop(), name=f"irc-read-{where}")
        try:
            async with asyncio.timeout(self.config.timeout):
                await self._register()
        except TimeoutError:
            await self.close()
            raise IrcError(f"registration with {where} timed out") from None
        except BaseException:
            await self.close()
            raise

    async def _register(self) -> None:
        cfg = self.config
        welcome = self._expect(self._welcome_matcher)
        if cfg.sasl and cfg.password:
            self.send("CAP", "LS", "302")
        elif cfg.password:
            self.send("PASS", cfg.password)
        self.send("NICK", cfg.nick)
        self.send("USER", cfg.username, "0", "*", cfg.realname)
        try:
            if cfg.sasl and cfg.password:
                await self._sasl(cfg.password)
            messages = await welcome
        finally:
            if not welcome.done():
                welcome.cancel()
        self.server_name = messages[-1].prefix or self.server_name
        self.nick = messages[-1].param(0, self.nick)

    def _welcome_matcher(self, msg: Message) -> Claim | Exception | None:
        if msg.command == "001":
            return DONE
        if msg.command in REGISTRATION_ERRORS and msg.command not in ("904", "905", "906", "908"):
            text = REGISTRATION_ERRORS[msg.command].format(nick=self.config.nick)
            return IrcError(text, msg.command)
        if msg.command == "ERROR":
            return ConnectionLost(f"server closed the connection: {msg.trailing}", "ERROR")
        return None

    def _sasl_payload(self, secret: str) -> tuple[str, bytes]:
        user = self.config.username.encode()
        if self.config.sasl_mechanism.upper() == "OAUTHBEARER":
            return (
                "OAUTHBEARER",
                b"n,a=" + user + b",\x01auth=Bearer " + secret.encode() + b"\x01\x01",
            )
        return "PLAIN", user + b"\0" + user + b"\0" + secret.encode()

    async def _sasl(self, secret: str) -> None:
        def caps(msg: Message) -> Claim | Exception | None:
            if msg.command != "CAP":
                return None
            sub = msg.param(1).upper()
            if sub == "LS":
                return MORE if msg.param(2) == "*" else DONE
            return None

        listed = await self.request(caps)
        offered = " ".join(m.trailing for m in listed).split()
        if not any(c == "sasl" or c.startswith("sasl=") for c in offered):
            raise IrcError("the server does not offer SASL", "CAP")

        def ack(msg: Message) -> Claim | Exception | None:
            if msg.command == "CAP" and msg.param(1).upper() in ("ACK", "NAK"):
                return DONE if msg.param(1).upper() == "ACK" else IrcError("SASL refused", "CAP")
            return None

        await self.request(ack, "CAP", "REQ", "sasl")

        def go_ahead(msg: Message) -> Claim | Exception | None:
            if msg.command == "AUTHENTICATE" and msg.param(0) == "+":
                return DONE
            return self._sasl_failure(msg)

        mechanism, payload = self._sasl_payload(secret)
        await self.request(go_ahead, "AUTHENTICATE", mechanism)
        blob = base64.b64encode(payload).decode()

        def outcome(msg: Message) -> Claim | Exception | None:
            return DONE if msg.command == "903" else self._sasl_failure(msg)

        chunks = [blob[i : i + 400] for i in range(0, len(blob), 400)] or ["+"]
        if len(chunks[-1]) == 400:
            chunks.append("+")
        for chunk in chunks[:-1]:
            self.send("AUTHENTICATE", chunk)
        await self.request(outcome, "AUTHENTICATE", chunks[-1])
        self.send("CAP", "END")

    @staticmethod
    def _sasl_failure(msg: Message) -> Exception | None:
        if msg.command in ("902", "904", "905", "906", "908"):
            return IrcError(REGISTRATION_ERRORS.get(msg.command, "SASL failed"), msg.command)
        return None

    async def close(self, quit_message: str | None = None) -> None:
        """QUIT (when given a message) and close; idempotent."""
        self._quitting = True
        if self._writer is not None and not self._writer.is_closing():
            if quit_message is not None:
                with contextlib.suppress(Exception):
                    self.send("QUIT", quit_message)
                    async with asyncio.timeout(2):
                        await self._writer.drain()
            self._writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await self._writer.wait_closed()
        if self._reading is not None and self._reading is not asyncio.current_task():
            self._reading.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reading
        self._finish("closed by us")

    @property
    def connected(self) -> bool:
        return not self.closed.done()

    # -- lines --------------------------------------------------------------------------------

    def send(self, command: str, *params: str) -> None:
        if self._writer is None or self._writer.is_closing() or self.closed.done():
            raise ConnectionLost(f"not connected to {self.config.host}")
        line = format_line(command, *params)
        self._writer.write(line.encode() + b"\r\n")

    async def _read_loop(self) -> None:
        assert self._reader is not None
        reason = "connection closed by the server"
        try:
            while True:
                raw = await self._reader.readline()
                if not raw:
                    break
                text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                if not text:
                    continue
                try:
                    msg = parse(text)
                except ValueError:
                    continue
                if msg.command == "ERROR":
                    reason = f"server closed the connection: {msg.trailing}"
                self._handle(msg)
        except (OSError, ssl.SSLError) as exc:
            reason = f"connection lost: {type(exc).__name__}"
        except asyncio.CancelledError:
            reason = "closed by us"
        finally:
            self._finish(reason)

    def _finish(self, reason: str) -> None:
        if not self.closed.done():
            self.closed.set_result(reason)
        for _, future, _ in self._waiters:
            if not future.done():
                future.set_exception(ConnectionLost(reason))
        self._waiters.clear()
        if self._writer is not None and not self._writer.is_closing():
            self._writer.close()

    def _handle(self, msg: Message) -> None:
        if msg.command == "PING":
            with contextlib.suppress(ConnectionLost):
                self.send("PONG", *msg.params[-1:])
            return
        if msg.command == "NICK" and casefold(msg.nick) == casefold(self.nick):
            self.nick = msg.param(0, self.nick)
        claimed = False
        for entry in list(self._waiters):
            matcher, future, seen = entry
            if future.done():
                continue
            verdict = matcher(msg)
            if verdict is None:
                continue
            claimed = True
            seen.append(msg)
            if isinstance(verdict, Exception):
                future.set_exception(verdict)
            elif verdict is DONE:
                future.set_result(seen)
            if future.done():
                self._waiters.remove(entry)
            break
        if not claimed and self.on_message is not None:
            try:
                self.on_message(msg)
            except Exception as exc:
                log.error("irc.listener.failed", command=msg.command, error=repr(exc))

    # -- requests -----------------------------------------------------------------------------

    def _expect(self, matcher: Matcher) -> asyncio.Future[list[Message]]:
        future: asyncio.Future[list[Message]] = asyncio.get_running_loop().create_future()
        if self.closed.done():
            future.set_exception(ConnectionLost(self.closed.result()))
        else:
            self._waiters.append((matcher, future, []))
        return future

    async def request(
        self,
        matcher: Matcher,
        command: str | None = None,
        *params: str,
        within: float | None = None,
    ) -> list[Message]:
        """Send ``command`` (if any) and return the messages ``matcher`` claimed up to DONE."""
        future = self._expect(matcher)
        try:
            if command is not None:
                self.send(command, *params)
            async with asyncio.timeout(within or self.config.timeout):
                return await future
        except TimeoutError:
            raise IrcError(f"{command or 'request'}: no answer from the server") from None
        finally:
            if not future.done():
                future.cancel()
            self._waiters = [w for w in self._waiters if w[1] is not future]

    async def barrier(self, errors: Matcher | None = None) -> None:
        """PING with a fresh token and wait for its PONG: everything sent before it has been
        processed by then, so an error reply to it (``errors``) would have arrived first."""
        token = f"sockethub-{next(self._tokens)}"

        def match(msg: Message) -> Claim | Exception | None:
            if msg.command == "PONG" and msg.trailing == token:
                return DONE
            return errors(msg) if errors is not None else None

        await self.request(match, "PING", token)
