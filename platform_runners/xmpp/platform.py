"""The ``xmpp`` platform: Sockethub's XMPP verbs over pooled :class:`XmppClient` objects.

Connections, sharing, grace periods and hand-over come from
:class:`~platform_runners.persistent_platform.PersistentPlatform`; this module
maps verbs onto the client and incoming stanzas onto events for every session
attached to the connection. A connection lost after login is re-established
(and its rooms re-joined) within ``SOCKETHUB_XMPP_RECONNECT_WINDOW`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import Awaitable, Iterator, Mapping
from typing import Any, TypeVar
from xml.etree.ElementTree import Element

import structlog

from platform_runners.address_guard import OutboundGuard
from platform_runners.persistent import Slot
from platform_runners.persistent_platform import PersistentPlatform
from platform_runners.platform import Context, Handler, PlatformError
from platform_runners.xmpp import events
from platform_runners.xmpp.client import XmppClient, XmppError
from platform_runners.xmpp.config import ConfigError, XmppSettings, config_from
from schemas.envelopes import JSONDict

log = structlog.get_logger("platform_runners.xmpp")

T = TypeVar("T")
XmppSlot = Slot[XmppClient]
FRIEND_PRESENCES = {
    "request-friend": ("subscribe",),
    "make-friend": ("subscribed", "subscribe"),
    "remove-friend": ("unsubscribe", "unsubscribed"),
}


def _obj(activity: Mapping[str, Any], name: str) -> JSONDict:
    value = activity.get(name)
    return value if isinstance(value, dict) else {}


def room_of(target: Mapping[str, Any]) -> str:
    """The bare room JID of a room target (``room@conference.host``, any ``/nick`` dropped)."""
    room = events.bare(str(target.get("id") or ""))
    if "@" not in room:
        raise PlatformError("target must be a room JID like room@conference.host")
    return room


def person_of(target: Mapping[str, Any]) -> str:
    jid = str(target.get("id") or "")
    if "@" not in jid:
        raise PlatformError("target must be a person JID like user@host")
    return jid


def nick_of(actor: Mapping[str, Any]) -> str:
    """Our nick in rooms: the actor's ``name``, else the local part of its JID."""
    return str(actor.get("name") or "") or str(actor.get("id") or "").split("@", 1)[0]


class XmppPlatform(PersistentPlatform[XmppClient]):
    name = "xmpp"

    def __init__(self, *args: Any, xmpp: XmppSettings | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.xmpp = xmpp or self.settings.xmpp
        self.guard = OutboundGuard.from_allowlist(self.settings.fetch_allowlist)

    def verb_handlers(self) -> Mapping[str, Handler]:
        return {
            "join": self.join,
            "leave": self.leave,
            "send": self.send,
            "update": self.update,
            "request-friend": self.friend,
            "remove-friend": self.friend,
            "make-friend": self.friend,
            "query": self.query,
        }

    # -- connections --------------------------------------------------------------------------

    async def open_connection(self, slot: XmppSlot, credentials: JSONDict) -> XmppClient:
        try:
            config = config_from(credentials, self.xmpp, self.guard)
        except ConfigError as exc:
            raise PlatformError(str(exc)) from None

        def on_stanza(xml: Element) -> None:
            rooms = set(client.rooms) | client.joining | set(slot.rooms)
            activity = events.translate(xml, slot.actor, rooms)
            if activity is not None:
                error = activity.get("error")
                self.pool.broadcast(slot, activity, verb=str(activity["type"]), error=error)

        def on_lost(reason: str) -> None:
            self.pool.broadcast_error(
                slot, f"Error: connection to {config.address} lost ({reason}), reconnecting"
            )
            self.pool.spawn(self._reconnect(slot, client))

        client = XmppClient(config, on_stanza=on_stanza, on_lost=on_lost)
        await _confirmed(client.open())
        return client

    async def close_connection(self, slot: XmppSlot, connection: XmppClient) -> None:
        await connection.close()

    async def restore_rooms(self, slot: XmppSlot, connection: XmppClient) -> None:
        """Re-join the recorded rooms and re-announce the recorded presence."""
        for room in list(slot.rooms):
            try:
                await connection.join(room, nick_of(slot.actor))
            except XmppError as exc:
                slot.rooms.pop(room, None)
                self.pool.broadcast_error(slot, f"Error: {exc}")
        presence = slot.extra.get("presence")
        if isinstance(presence, dict) and presence.get("presence") not in (None, "online"):
            connection.presence(str(presence["presence"]), presence.get("content"))

    async def _reconnect(self, slot: XmppSlot, client: XmppClient) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.xmpp.reconnect_window
        delay, last = 1.0, "gone"
        while not slot.closed and slot.connection is client:
            try:
                await client.open()
                await self.restore_rooms(slot, client)
            except XmppError as exc:
                last = str(exc)
                if last.startswith("authentication failed") or loop.time() + delay > deadline:
                    break
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            await self.pool.save(slot)
            note = f"reconnected to {client.config.address}"
            self.pool.broadcast(slot, self._note(slot, note), verb="connect")
            return
        if not slot.closed and slot.connection is client:
            self.pool.broadcast_error(slot, f"Error: connection lost: {last}")
            await self.pool.discard(slot, forget=True)

    @staticmethod
    def _note(slot: XmppSlot, text: str) -> JSONDict:
        return {
            "type": "connect",
            "actor": copy.deepcopy(slot.actor),
            "object": {"type": "note", "content": text},
        }

    # -- verbs --------------------------------------------------------------------------------

    async def join(self, ctx: Context) -> JSONDict | None:
        slot, client = await self.require(ctx)
        target = _obj(ctx.activity, "target")
        room = room_of(target)
        if room not in client.rooms:
            await _confirmed(client.join(room, nick_of(slot.actor)))
        if room not in slot.rooms:
            slot.rooms[room] = copy.deepcopy(target)
            await self.pool.save(slot)
        return None

    async def leave(self, ctx: Context) -> JSONDict | None:
        slot, client = await self.require(ctx)
        room = room_of(_obj(ctx.activity, "target"))
        await _confirmed(client.leave(room, nick_of(slot.actor)))
        if slot.rooms.pop(room, None) is not None:
            await self.pool.save(slot)
        return None

    async def send(self, ctx: Context) -> JSONDict:
        _, client = await self.require(ctx)
        obj = _obj(ctx.activity, "object")
        content = obj.get("content")
        if not isinstance(content, str):
            raise PlatformError("cannot send message with no object.content")
        target = _obj(ctx.activity, "target")
        groupchat = target.get("type") == "room"
        if groupchat:
            to = room_of(target)
            if to not in client.rooms:
                raise PlatformError(f"cannot send to {to}: join the room first")
        else:
            to = person_of(target)
        replace = _obj(obj, "xmpp:replace").get("id")
        with _client_errors():
            sent = client.send(
                to,
                content,
                groupchat=groupchat,
                message_id=str(obj["id"]) if obj.get("id") else None,
                replaces=str(replace) if replace else None,
            )
        result = ctx.activity
        result["object"] = {**obj, "id": sent}  # the id a later correction refers to
        return result

    async def update(self, ctx: Context) -> JSONDict | None:
        slot, client = await self.require(ctx)
        obj = _obj(ctx.activity, "object")
        if obj.get("type") != "presence":
            raise PlatformError(f"unknown update object type: {obj.get('type')}")
        presence, content = str(obj.get("presence") or "online"), obj.get("content")
        status = str(content) if content else None
        with _client_errors():
            client.presence(presence, status)
        slot.extra["presence"] = {"presence": presence, "content": status}
        await self.pool.save(slot)
        return None

    async def friend(self, ctx: Context) -> JSONDict | None:
        _, client = await self.require(ctx)
        jid = events.bare(person_of(_obj(ctx.activity, "target")))
        kinds = FRIEND_PRESENCES[ctx.request.verb]
        with _client_errors():
            client.subscription(jid, *kinds)
        return None

    async def query(self, ctx: Context) -> JSONDict:
        slot, client = await self.require(ctx)
        kind = _obj(ctx.activity, "object").get("type") or "attendance"
        target = _obj(ctx.activity, "target")
        room = room_of(target)
        actor: JSONDict = {"id": room, "type": "room"}
        if kind == "attendance":
            members = await _confirmed(client.occupants(room))
            obj: JSONDict = {"type": "attendance", "members": members}
        elif kind == "room-info":
            name, obj = events.room_info_object(await _confirmed(client.room_info(room)))
            actor["name"] = name or room
        else:
            raise PlatformError(f"unknown 'type' '{kind}'")
        result: JSONDict = {
            "type": "query",
            "actor": actor,
            "target": copy.deepcopy(ctx.activity.get("actor") or slot.actor),
            "object": obj,
        }
        if "id" in ctx.activity:
            result["id"] = ctx.activity["id"]
        return result


@contextlib.contextmanager
def _client_errors() -> Iterator[None]:
    """Turn the client's errors into client-facing ones."""
    try:
        yield
    except XmppError as exc:
        raise PlatformError(str(exc)) from None


async def _confirmed(awaitable: Awaitable[T]) -> T:
    with _client_errors():
        return await awaitable
