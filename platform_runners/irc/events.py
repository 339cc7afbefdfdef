"""Incoming IRC traffic as ActivityStreams activities, in Sockethub's IRC shapes.

A person is ``{"id": "nick@server", "type": "person", "name": "nick"}``; a room
is ``{"id": "channel@server", "type": "room", "name": "#channel"}`` (or the
object the client used when it joined); the server is a ``service``.
"""

from __future__ import annotations

from collections.abc import Callable

from platform_runners.irc.message import Message, is_channel, parse_ctcp
from schemas.envelopes import JSONDict

ROLES = {"~": "owner", "&": "admin", "@": "owner", "%": "admin", "+": "participant"}


def person(nick: str, server: str) -> JSONDict:
    return {"id": f"{nick}@{server}", "type": "person", "name": nick}


def room(channel: str, server: str) -> JSONDict:
    return {"id": f"{channel.lstrip('#&+!')}@{server}", "type": "room", "name": channel}


def service(server: str) -> JSONDict:
    return {"id": server, "type": "service", "name": server}


def split_member(entry: str) -> tuple[str, str]:
    """``@nick`` -> (``nick``, ``owner``); several prefixes (multi-prefix) keep the first."""
    role = "member"
    if entry and entry[0] in ROLES:
        role = ROLES[entry[0]]
    return entry.lstrip("~&@%+"), role


class Translator:
    """Turns messages of one connection into activities (None: nothing for the client)."""

    def __init__(
        self,
        server: str,
        own_nick: Callable[[], str],
        known_room: Callable[[str], JSONDict | None],
    ) -> None:
        self.server = server
        self._own_nick = own_nick
        self._known_room = known_room
        self._topic: dict[str, str] = {}

    def room(self, channel: str) -> JSONDict:
        return dict(self._known_room(channel) or room(channel, self.server))

    def person(self, nick: str) -> JSONDict:
        return person(nick, self.server)

    def _sender(self, msg: Message) -> JSONDict:
        return self.person(msg.nick) if msg.from_user else service(msg.nick or self.server)

    def _target(self, name: str) -> JSONDict:
        return self.room(name) if is_channel(name) else self.person(name)

    def translate(self, msg: Message) -> list[JSONDict]:
        handler = getattr(self, f"_on_{msg.command.lower()}", None)
        result: JSONDict | list[JSONDict] | None = handler(msg) if handler is not None else None
        if result is None:
            return []
        return result if isinstance(result, list) else [result]

    def _on_privmsg(self, msg: Message) -> JSONDict | None:
        text = msg.trailing
        kind = "message"
        found = parse_ctcp(text)
        if found is not None:
            command, arg = found
            if command != "ACTION":
                return None  # VERSION, PING, ...: not for the client
            kind, text = "me", arg
        return {
            "type": "send",
            "actor": self._sender(msg),
            "target": self._target(msg.param(0)),
            "object": {"type": kind, "content": text},
        }

    def _on_notice(self, msg: Message) -> JSONDict | None:
        target = msg.param(0)
        return {
            "type": "send",
            "actor": self._sender(msg),
            "target": self._target(target if target != "*" else self._own_nick()),
            "object": {"type": "notice", "content": msg.trailing},
        }

    def _on_join(self, msg: Message) -> JSONDict:
        return {"type": "join", "actor": self._sender(msg), "target": self.room(msg.param(0))}

    def _on_part(self, msg: Message) -> JSONDict:
        reason = msg.param(1)
        return {
            "type": "leave",
            "actor": self._sender(msg),
            "target": self.room(msg.param(0)),
            "object": {"type": "message", "content": reason or "user has left the channel"},
        }

    def _on_kick(self, msg: Message) -> JSONDict:
        return {
            "type": "leave",
            "actor": self.person(msg.param(1)),
            "target": self.room(msg.param(0)),
            "object": {"type": "message", "content": f"kicked by {msg.nick}: {msg.param(2)}"},
        }

    def _on_quit(self, msg: Message) -> JSONDict:
        return {
            "type": "leave",
            "actor": self._sender(msg),
            "target": service(self.server),
            "object": {"type": "message", "content": msg.trailing or "user has quit"},
        }

    def _on_nick(self, msg: Message) -> JSONDict:
        return {
            "type": "update",
            "actor": self._sender(msg),
            "target": self.person(msg.param(0)),
            "object": {"type": "address"},
        }

    def _on_topic(self, msg: Message) -> JSONDict:
        return {
            "type": "update",
            "actor": self._sender(msg),
            "target": self.room(msg.param(0)),
            "object": {"type": "topic", "content": msg.param(1)},
        }

    def _on_332(self, msg: Message) -> None:
        """RPL_TOPIC: held until RPL_TOPICWHOTIME names who set it."""
        self._topic[msg.param(1)] = msg.trailing

    def _on_333(self, msg: Message) -> JSONDict | None:
        channel = msg.param(1)
        content = self._topic.pop(channel, None)
        if content is None:
            return None
        activity: JSONDict = {
            "type": "update",
            "actor": self.person(msg.param(2).split("!", 1)[0]),
            "target": self.room(channel),
            "object": {"type": "topic", "content": content},
        }
        return activity

    def _on_353(self, msg: Message) -> list[JSONDict]:
        """RPL_NAMREPLY outside a query (after a join): one presence update per member."""
        target = self.room(msg.param(2))
        updates = []
        for entry in msg.trailing.split():
            nick, role = split_member(entry)
            updates.append(
                {
                    "type": "update",
                    "actor": self.person(nick),
                    "target": dict(target),
                    "object": {"type": "presence", "role": role},
                }
            )
        return updates
