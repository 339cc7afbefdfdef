"""IRC line parsing/formatting and incoming-traffic translation (pure functions)."""

from __future__ import annotations

import pytest

from platform_runners.irc.events import Translator, room, split_member
from platform_runners.irc.message import (
    LineError,
    Message,
    casefold,
    ctcp,
    format_line,
    parse,
    parse_ctcp,
    split_text,
)
from platform_runners.irc.platform import channel_of, nick_of


def test_parse_full_line() -> None:
    msg = parse("@time=x;a :nick!user@host PRIVMSG #chan :hello  there \r\n")
    assert msg == Message(
        "PRIVMSG", ("#chan", "hello  there "), "nick!user@host", {"time": "x", "a": ""}
    )
    assert (msg.nick, msg.from_user, msg.trailing) == ("nick", True, "hello  there ")


def test_parse_numeric_and_server_prefix() -> None:
    msg = parse(":irc.test 433 * taken :Nickname already in use")
    assert (msg.command, msg.params, msg.from_user) == (
        "433",
        ("*", "taken", "Nickname already in use"),
        False,
    )
    assert parse("PING :abc").params == ("abc",)
    with pytest.raises(LineError):
        parse(":prefix-only")


def test_format_line_refuses_injection() -> None:
    assert format_line("PRIVMSG", "#c", "two words") == "PRIVMSG #c :two words"
    assert format_line("NICK", "bob") == "NICK bob"
    assert format_line("PRIVMSG", "#c", "") == "PRIVMSG #c :"
    with pytest.raises(LineError):
        format_line("PRIVMSG", "#c", "hi\r\nQUIT :pwned")
    with pytest.raises(LineError):
        format_line("PRIVMSG", "#a b", "x")


def test_ctcp_and_splitting() -> None:
    assert ctcp("ACTION", "waves") == "\x01ACTION waves\x01"
    assert parse_ctcp("\x01ACTION waves\x01") == ("ACTION", "waves")
    assert parse_ctcp("plain") is None
    assert split_text("a\nb\r\nc") == ["a", "b", "c"]
    assert all(len(c.encode()) <= 10 for c in split_text("é" * 20, limit=10))
    assert casefold("Nick[]") == "nick{}"


def test_targets_and_members() -> None:
    assert channel_of({"id": "chan@server", "type": "room"}) == "#chan"
    assert channel_of({"id": "x", "type": "room", "name": "#real"}) == "#real"
    assert channel_of({"id": "server/#old", "type": "room"}) == "#old"
    assert nick_of({"id": "bob@server", "type": "person"}) == "bob"
    assert split_member("@op") == ("op", "owner")
    assert split_member("plain") == ("plain", "member")


def translator() -> Translator:
    known = {"#known": {"id": "custom-id", "type": "room", "name": "#known"}}
    return Translator("srv", lambda: "me", lambda name: known.get(name))


def test_translate_messages() -> None:
    t = translator()
    [said] = t.translate(parse(":bob!u@h PRIVMSG #c :hello"))
    assert said == {
        "type": "send",
        "actor": {"id": "bob@srv", "type": "person", "name": "bob"},
        "target": room("#c", "srv"),
        "object": {"type": "message", "content": "hello"},
    }
    assert said["target"] == {"id": "c@srv", "type": "room", "name": "#c"}
    [action] = t.translate(parse(":bob!u@h PRIVMSG me :\x01ACTION waves\x01"))
    assert action["object"] == {"type": "me", "content": "waves"}
    assert action["target"]["type"] == "person"
    assert t.translate(parse(":bob!u@h PRIVMSG me :\x01VERSION\x01")) == []
    [notice] = t.translate(parse(":irc.test NOTICE * :*** Looking up"))
    assert notice["actor"]["type"] == "service" and notice["object"]["type"] == "notice"


def test_translate_membership_nick_topic() -> None:
    t = translator()
    [join] = t.translate(parse(":bob!u@h JOIN #known"))
    assert join["target"]["id"] == "custom-id"
    [part] = t.translate(parse(":bob!u@h PART #c"))
    assert part["type"] == "leave" and part["object"]["content"] == "user has left the channel"
    [quit_] = t.translate(parse(":bob!u@h QUIT :gone"))
    assert quit_["target"]["type"] == "service"
    [nick] = t.translate(parse(":bob!u@h NICK :rob"))
    assert nick["object"] == {"type": "address"} and nick["target"]["id"] == "rob@srv"
    [topic] = t.translate(parse(":bob!u@h TOPIC #c :new"))
    assert topic["object"] == {"type": "topic", "content": "new"}
    assert t.translate(parse(":srv 332 me #c :old topic")) == []
    [was] = t.translate(parse(":srv 333 me #c alice!u@h 1700000000"))
    assert was["actor"]["name"] == "alice" and was["object"]["content"] == "old topic"
    presence = t.translate(parse(":srv 353 me = #c :@alice bob"))
    assert [(p["actor"]["name"], p["object"]["role"]) for p in presence] == [
        ("alice", "owner"),
        ("bob", "member"),
    ]
    assert t.translate(parse(":srv 372 me :motd line")) == []
