"""Connection state records: sealed with the payload keys when they are set."""

from __future__ import annotations

import base64

import pytest

from platform_runners.persistent_state import StateSealError, decode_state, encode_state
from schemas.logcrypt import CodecError, KeyRing

RING = KeyRing([("k1", b"0" * 32)])
STATE = {"partition": 1, "sessions": ["sess-1"], "nick": "secret-nick", "rooms": ["#private"]}
TOPIC = "sockethub.connections.irc"
KEY = b"irc:alice@irc.example.test"


def test_plain_without_keys_round_trips() -> None:
    raw = encode_state(STATE)
    assert b"secret-nick" in raw
    assert decode_state(raw) == {**STATE, "v": 1}
    assert decode_state(None) is None


def test_sealed_with_keys_round_trips_and_hides_the_state() -> None:
    raw = encode_state(STATE, ring=RING, topic=TOPIC, key=KEY)
    for text in (b"secret-nick", b"#private", b"sess-1"):
        assert text not in raw
    assert decode_state(raw, ring=RING, topic=TOPIC, key=KEY) == {**STATE, "v": 1}


def test_sealed_state_opens_only_under_its_own_topic_and_key() -> None:
    raw = encode_state(STATE, ring=RING, topic=TOPIC, key=KEY)
    with pytest.raises(CodecError):
        decode_state(raw, ring=RING, topic=TOPIC, key=b"irc:mallory@irc.example.test")
    with pytest.raises(CodecError):
        decode_state(raw, ring=RING, topic="sockethub.connections.xmpp", key=KEY)
    other = KeyRing([("k1", b"1" * 32)])
    with pytest.raises(CodecError):
        decode_state(raw, ring=other, topic=TOPIC, key=KEY)


def test_unsealed_state_is_refused_when_keys_are_set() -> None:
    with pytest.raises(StateSealError, match="unsealed"):
        decode_state(encode_state(STATE), ring=RING, topic=TOPIC, key=KEY)
    with pytest.raises(StateSealError, match="no payload keys"):
        decode_state(encode_state(STATE, ring=RING, topic=TOPIC, key=KEY))
    forged = b'{"v":1,"kid":"k1","sealed":"' + base64.b64encode(b"x" * 40) + b'"}'
    with pytest.raises(CodecError):
        decode_state(forged, ring=RING, topic=TOPIC, key=KEY)
    with pytest.raises(StateSealError, match="malformed"):
        decode_state(b'{"v":1,"kid":"k1","sealed":"!!"}', ring=RING, topic=TOPIC, key=KEY)
