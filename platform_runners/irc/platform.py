"""The ``irc`` platform: Sockethub's IRC verbs over pooled :class:`IrcConnection` objects."""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Mapping
from typing import Any, TypeVar

import structlog

from platform_runners.address_guard import OutboundGuard
from platform_runners.irc.client import IrcConfig, IrcError
from platform_runners.irc.connection import IrcConnection
from platform_runners.irc.events import Translator, person
from platform_runners.irc.message import Message, casefold, ctcp, is_channel
from platform_runners.persistent import Slot
from platform_runners.persistent_platform import PersistentPlatform
from platform_runners.platform import Context, Handler, PlatformError
from platform_runners.settings import IrcSettings as IrcSettings  # re-exported
from schemas.envelopes import JSONDict

log = structlog.get_logger("platform_runners.irc")

T = TypeVar("T")

NOT_JOINED = "cannot send message to a channel of which you've not first joined."


def _obj(activity: Mapping[str, Any], name: str) -> JSONDict:
    value = activity.get(name)
    return value if isinstance(value, dict) else {}


def channel_of(target: Mapping[str, Any]) -> str:
    """``#chan`` from a room target: its ``name``, else its id (``chan@server``,
    ``#chan@server`` or Sockethub's older ``server/chan``)."""
    name = str(target.get("name") or "")
    if name:
        return name if is_channel(name) else f"#{name}"
    ident = str(target.get("id") or "")
    if "/" in ident:
        ident = ident.rsplit("/", 1)[1]
    elif "@" in ident:
        ident = ident.rsplit("@", 1)[0]
    if not ident:
        raise PlatformError("target has no room name")
    return ident if is_channel(ident) else f"#{ident}"


def nick_of(target: Mapping[str, Any]) -> str:
    name = str(target.get("name") or "") or str(target.get("id") or "").split("@", 1)[0]
    if not name:
        raise PlatformError("target has no nickname")
    return name


def config_from(
    credentials: JSONDict,
    actor: JSONDict,
    options: IrcSettings,
    guard: OutboundGuard | None = None,
) -> IrcConfig:
    obj = _obj(credentials, "object")
    secure = bool(obj.get("secure", True))
    secret = obj.get("token") if obj.get("saslMechanism") == "OAUTHBEARER" else obj.get("password")
    nick = str(obj["nick"])
    return IrcConfig(
        host=str(obj["server"]),
        port=int(obj.get("port") or (6697 if secure else 6667)),
        nick=nick,
        username=str(obj.get("username") or nick),
        realname=str(actor.get("name") or nick),
        secure=secure,
        password=str(secret) if secret else None,
        sasl=bool(obj.get("sasl", bool(secret))),
        sasl_mechanism=str(obj.get("saslMechanism") or "PLAIN"),
        tls_verify=options.tls_verify,
        ca_file=options.ca_file,
        timeout=options.timeout,
        guard=guard or OutboundGuard(),
    )


class IrcPlatform(PersistentPlatform[IrcConnection]):
    name = "irc"

    def __init__(self, *args: Any, irc: IrcSettings | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.irc = irc or self.settings.irc
        self.guard = OutboundGuard.from_allowlist(self.settings.fetch_allowlist)

    def verb_handlers(self) -> Mapping[str, Handler]:
        return {
            "join": self.join,
            "leave": self.leave,
            "send": self.send,
            "announce": self.announce,
            "update": self.update,
            "query": self.query,
        }

    # -- connections --------------------------------------------------------------------------

    async def open_connection(
        self, slot: Slot[IrcConnection], credentials: JSONDict
    ) -> IrcConnection:
        config = config_from(credentials, slot.actor, self.irc, self.guard)
        if slot.extra.get("nick"):
            config.nick = str(slot.extra["nick"])  # a nick changed since: keep it
        server = config.host
        translator = Translator(
            server, lambda: connection.nick, lambda name: slot.rooms.get(casefold(name))
        )

        def on_message(msg: Message) -> None:
            self._track(slot, connection, msg)
            for activity in translator.translate(msg):
                self.pool.broadcast(slot, activity)

        def on_lost(reason: str) -> None:
            self.pool.broadcast_error(
                slot, f"Error: connection to {server} lost ({reason}), reconnecting"
            )

        def on_back() -> None:
            self.pool.broadcast(slot, self._note(slot, f"reconnected to {server}"), verb="connect")

        def on_failed(reason: str) -> None:
            self.pool.broadcast_error(slot, f"Error: connection to {server} lost: {reason}")
            self.pool.spawn(self.pool.discard(slot, forget=True))

        connection = IrcConnection(
            config,
            on_message=on_message,
            on_lost=on_lost,
            on_back=on_back,
            on_failed=on_failed,
            rooms=lambda: [str(t.get("name") or k) for k, t in slot.rooms.items()],
            reconnect_window=self.irc.reconnect_window,
        )
        try:
            await connection.open()
        except IrcError as exc:
            raise PlatformError(str(exc)) from None
        slot.extra["nick"] = connection.nick
        return connection

    def _track(self, slot: Slot[IrcConnection], connection: IrcConnection, msg: Message) -> None:
        """Keep the desired state true to what the server did on its own (kicks, forced nick)."""
        mine = casefold(msg.nick) == casefold(connection.nick)
        if msg.command == "KICK" and casefold(msg.param(1)) == casefold(connection.nick):
            slot.rooms.pop(casefold(msg.param(0)), None)
            self.pool.spawn(self.pool.save(slot))
        elif msg.command == "NICK" and (mine or slot.extra.get("nick") != connection.nick):
            slot.extra["nick"] = connection.nick
            self.pool.spawn(self.pool.save(slot))

    async def close_connection(self, slot: Slot[IrcConnection], connection: IrcConnection) -> None:
        await connection.close("Sockethub")

    async def restore_rooms(self, slot: Slot[IrcConnection], connection: IrcConnection) -> None:
        for key, target in list(slot.rooms.items()):
            channel = str(target.get("name") or key)
            try:
                await connection.join(channel)
            except IrcError as exc:
                slot.rooms.pop(key, None)
                self.pool.broadcast_error(slot, f"Error: {exc}")

    @staticmethod
    def _note(slot: Slot[IrcConnection], text: str) -> JSONDict:
        return {
            "type": "connect",
            "actor": copy.deepcopy(slot.actor),
            "object": {"type": "note", "content": text},
        }

    # -- verbs --------------------------------------------------------------------------------

    async def _irc(self, ctx: Context) -> tuple[Slot[IrcConnection], IrcConnection]:
        return await self.require(ctx)

    async def join(self, ctx: Context) -> JSONDict | None:
        slot, connection = await self._irc(ctx)
        target = _obj(ctx.activity, "target")
        channel = channel_of(target)
        if casefold(channel) not in slot.rooms:
            await _confirmed(connection.join(channel))
            slot.rooms[casefold(channel)] = {**target, "name": channel}
            await self.pool.save(slot)
        return None

    async def leave(self, ctx: Context) -> JSONDict | None:
        slot, connection = await self._irc(ctx)
        channel = channel_of(_obj(ctx.activity, "target"))
        await _confirmed(connection.part(channel))
        if slot.rooms.pop(casefold(channel), None) is not None:
            await self.pool.save(slot)
        return None

    def _recipient(self, slot: Slot[IrcConnection], target: JSONDict) -> str:
        if target.get("type") == "room":
            channel = channel_of(target)
            if casefold(channel) not in slot.rooms:
                raise PlatformError(NOT_JOINED)
            return channel
        return nick_of(target)

    async def send(self, ctx: Context) -> JSONDict | None:
        slot, connection = await self._irc(ctx)
        content = _obj(ctx.activity, "object").get("content")
        if not isinstance(content, str):
            raise PlatformError("cannot send message with no object.content")
        recipient = self._recipient(slot, _obj(ctx.activity, "target"))
        command, text = "PRIVMSG", content.strip()
        if content.startswith("/me "):
            text = ctcp("ACTION", content[4:].strip())
        elif content.startswith("/notice "):
            command, text = "NOTICE", content[8:].strip()
        await _confirmed(connection.say(command, recipient, text))
        return None

    async def announce(self, ctx: Context) -> JSONDict | None:
        """An announcement is a NOTICE (IRC's message that must not trigger automatic replies)."""
        slot, connection = await self._irc(ctx)
        content = _obj(ctx.activity, "object").get("content")
        if not isinstance(content, str):
            raise PlatformError("cannot announce with no object.content")
        recipient = self._recipient(slot, _obj(ctx.activity, "target"))
        await _confirmed(connection.say("NOTICE", recipient, content.strip()))
        return None

    async def update(self, ctx: Context) -> JSONDict | None:
        slot, connection = await self._irc(ctx)
        kind = _obj(ctx.activity, "object").get("type")
        target = _obj(ctx.activity, "target")
        if kind == "address":
            if target.get("type") != "person":
                raise PlatformError("a nick change needs a person target")
            slot.extra["nick"] = await _confirmed(connection.change_nick(nick_of(target)))
            await self.pool.save(slot)
        elif kind == "topic":
            content = str(_obj(ctx.activity, "object").get("content", ""))
            await _confirmed(connection.set_topic(channel_of(target), content))
        else:
            raise PlatformError(f"unknown update action: {kind}")
        return None

    async def query(self, ctx: Context) -> JSONDict:
        slot, connection = await self._irc(ctx)
        kind = _obj(ctx.activity, "object").get("type")
        if kind != "attendance":
            raise PlatformError(f"unknown 'type' '{kind}'")
        target = _obj(ctx.activity, "target")
        channel = channel_of(target)
        members = await _confirmed(connection.names(channel))
        room = dict(slot.rooms.get(casefold(channel)) or target)
        room.setdefault("type", "room")
        room["name"] = channel
        result: JSONDict = {
            "type": "query",
            "actor": room,
            "target": copy.deepcopy(ctx.activity.get("actor") or person(connection.nick, "")),
            "object": {"type": "attendance", "members": members},
        }
        if "id" in ctx.activity:
            result["id"] = ctx.activity["id"]
        return result


async def _confirmed(awaitable: Awaitable[T]) -> T:
    """Turn the protocol layer's errors into client-facing ones."""
    try:
        return await awaitable
    except IrcError as exc:
        raise PlatformError(str(exc)) from None
