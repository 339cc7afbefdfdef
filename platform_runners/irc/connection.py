"""A long-lived IRC connection: the commands Sockethub needs, each confirmed by the server,
and reconnection (with the rooms re-joined) when the server goes away."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import structlog

from platform_runners.irc.client import (
    DONE,
    MORE,
    Claim,
    ConnectionLost,
    IrcClient,
    IrcConfig,
    IrcError,
)
from platform_runners.irc.events import split_member
from platform_runners.irc.message import Message, casefold, split_text

log = structlog.get_logger("platform_runners.irc.connection")

JOIN_ERRORS = {"403", "405", "437", "461", "471", "473", "474", "475", "476", "477", "479"}
SEND_ERRORS = {"401", "403", "404", "406", "407", "411", "412", "413", "414"}
NICK_ERRORS = {"431", "432", "433", "436", "437", "447", "484"}
TOPIC_ERRORS = {"403", "442", "477", "482"}
PART_ERRORS = {"403", "442"}


class IrcConnection:
    """Owns the current :class:`IrcClient` and replaces it after the connection drops."""

    def __init__(
        self,
        config: IrcConfig,
        *,
        on_message: Callable[[Message], None],
        on_lost: Callable[[str], None],
        on_back: Callable[[], None],
        on_failed: Callable[[str], None],
        rooms: Callable[[], list[str]],
        reconnect_window: float = 60.0,
    ) -> None:
        self.config = config
        self._on_message = on_message
        self._on_lost = on_lost
        self._on_back = on_back
        self._on_failed = on_failed
        self._rooms = rooms
        self.reconnect_window = reconnect_window
        self.client: IrcClient | None = None
        self._available = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def nick(self) -> str:
        return self.client.nick if self.client is not None else self.config.nick

    async def open(self) -> None:
        await self._connect()
        self._supervisor = asyncio.create_task(self._supervise(), name="irc-supervisor")

    async def _connect(self) -> None:
        client = IrcClient(self.config, self._on_message)
        await client.connect()
        self.client = client
        self.config.nick = client.nick
        self._available.set()

    async def close(self, quit_message: str = "") -> None:
        self._closing = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._supervisor
        if self.client is not None:
            await self.client.close(quit_message or "Sockethub")

    async def _supervise(self) -> None:
        while not self._closing:
            assert self.client is not None
            reason = await asyncio.shield(self.client.closed)
            if self._closing:
                return
            self._available.clear()
            log.warning("irc.connection.lost", host=self.config.host, reason=reason)
            self._on_lost(reason)
            if not await self._reconnect():
                self._on_failed(reason)
                return
            self._on_back()

    async def _reconnect(self) -> bool:
        deadline = time.monotonic() + self.reconnect_window
        delay = 0.5
        while not self._closing and time.monotonic() < deadline:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
            try:
                await self._connect()
            except IrcError as exc:
                log.info("irc.reconnect.failed", host=self.config.host, error=str(exc))
                continue
            for channel in self._rooms():
                try:
                    await self.join(channel)
                except IrcError as exc:
                    log.warning("irc.rejoin.failed", channel=channel, error=str(exc))
            return True
        return False

    async def current(self, wait: float = 15.0) -> IrcClient:
        """The connected client, waiting a little while a reconnection is under way."""
        if not self._available.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._available.wait()
        client = self.client
        if client is None or not client.connected:
            raise ConnectionLost(f"not connected to {self.config.host} (reconnecting)")
        return client

    # -- commands -----------------------------------------------------------------------------

    async def join(self, channel: str) -> None:
        client = await self.current()
        key = casefold(channel)

        def match(msg: Message) -> Claim | Exception | None:
            if (
                msg.command == "JOIN"
                and casefold(msg.nick) == casefold(client.nick)
                and casefold(msg.param(0)) == key
            ):
                return DONE
            if msg.command in JOIN_ERRORS and casefold(msg.param(1)) == key:
                return IrcError(f"cannot join {channel}: {msg.trailing}", msg.command)
            return None

        await client.request(match, "JOIN", channel)

    async def part(self, channel: str, reason: str = "") -> None:
        client = await self.current()
        key = casefold(channel)

        def match(msg: Message) -> Claim | Exception | None:
            if (
                msg.command == "PART"
                and casefold(msg.nick) == casefold(client.nick)
                and casefold(msg.param(0)) == key
            ):
                return DONE
            if msg.command in PART_ERRORS and casefold(msg.param(1)) == key:
                return IrcError(f"cannot leave {channel}: {msg.trailing}", msg.command)
            return None

        params = (channel, reason) if reason else (channel,)
        await client.request(match, "PART", *params)

    async def say(self, command: str, target: str, text: str) -> None:
        """PRIVMSG or NOTICE (one line per line of ``text``), confirmed by a PING barrier."""
        client = await self.current()
        key = casefold(target)
        lines = split_text(text) or [""]
        for line in lines:
            client.send(command, target, line)

        def errors(msg: Message) -> Exception | None:
            if msg.command in SEND_ERRORS and casefold(msg.param(1)) == key:
                return IrcError(f"cannot send to {target}: {msg.trailing}", msg.command)
            return None

        await client.barrier(errors)

    async def change_nick(self, new: str) -> str:
        client = await self.current()
        old = casefold(client.nick)

        def match(msg: Message) -> Claim | Exception | None:
            if msg.command == "NICK" and casefold(msg.nick) == old:
                return DONE
            if msg.command in NICK_ERRORS:
                return IrcError(f"cannot change nickname to {new}: {msg.trailing}", msg.command)
            return None

        await client.request(match, "NICK", new)
        self.config.nick = client.nick
        return client.nick

    async def set_topic(self, channel: str, topic: str) -> None:
        client = await self.current()
        key = casefold(channel)

        def match(msg: Message) -> Claim | Exception | None:
            if msg.command == "TOPIC" and casefold(msg.param(0)) == key:
                return DONE if casefold(msg.nick) == casefold(client.nick) else None
            if msg.command in TOPIC_ERRORS and casefold(msg.param(1)) == key:
                return IrcError(f"cannot set the topic of {channel}: {msg.trailing}", msg.command)
            return None

        await client.request(match, "TOPIC", channel, topic)

    async def names(self, channel: str) -> list[str]:
        client = await self.current()
        key = casefold(channel)

        def match(msg: Message) -> Claim | Exception | None:
            if msg.command == "353" and casefold(msg.param(2)) == key:
                return MORE
            if msg.command == "366" and casefold(msg.param(1)) == key:
                return DONE
            if msg.command in ("403", "401") and casefold(msg.param(1)) == key:
                return IrcError(f"no such channel {channel}", msg.command)
            return None

        replies = await client.request(match, "NAMES", channel)
        members: list[str] = []
        for reply in replies:
            if reply.command == "353":
                members.extend(split_member(e)[0] for e in reply.trailing.split() if e)
        return members
