"""Hypothesis strategies: activities of every platform in the protocol's shapes, plus
arbitrary extra JSON, and the records that carry them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import strategies as st

from schemas.envelopes import PlatformEvent, Request, RequestKind, Result

AS = "https://www.w3.org/ns/activitystreams"
SH = "https://sockethub.org/ns/context/v1.jsonld"
PLATFORMS = ("dummy", "feeds", "metadata", "irc", "xmpp")

json_leaf = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_value = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
extras = st.dictionaries(st.text(max_size=10), json_value, max_size=3)


def context(platform: str) -> list[str]:
    return [AS, SH, f"https://sockethub.org/ns/context/platform/{platform}/v1.jsonld"]


def _with(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    return {**extra, **base}


@st.composite
def activities(draw: st.DrawFn, platform: str) -> dict[str, Any]:
    text = st.text(max_size=30)
    url = st.builds(
        lambda h: f"https://{h}.example/feed", st.from_regex(r"[a-z]{1,8}", fullmatch=True)
    )
    activity: dict[str, Any] = {"@context": context(platform)}
    if platform == "dummy":
        activity.update(
            type=draw(st.sampled_from(["echo", "greet", "fail", "throw"])),
            actor=_with({"id": draw(text), "type": "person"}, draw(extras)),
            object=_with({"type": "message", "content": draw(text)}, draw(extras)),
        )
        if draw(st.booleans()):
            activity["target"] = {"id": "dummy", "type": "platform"}
    elif platform == "feeds":
        feed = draw(url)
        items = [
            {
                "type": "post",
                "actor": {"id": feed, "type": "feed", "name": draw(text), "link": feed},
                "object": _with(
                    {
                        "type": draw(st.sampled_from(["article", "note"])),
                        "title": draw(text),
                        "id": draw(text),
                        "content": draw(text),
                        "contentType": draw(st.sampled_from(["html", "text"])),
                        "url": feed,
                        "datenum": draw(st.integers(0, 2**45)),
                    },
                    draw(extras),
                ),
            }
            for _ in range(draw(st.integers(0, 4)))
        ]
        activity.update(
            type="collection",
            summary=draw(text),
            totalItems=len(items),
            items=items,
            actor={"id": feed, "type": "feed"},
            id=draw(st.none() | text),
        )
    elif platform == "metadata":
        activity.update(
            type="fetch",
            actor=_with({"id": draw(url), "type": "website", "name": draw(text)}, draw(extras)),
            object={
                "type": "page",
                "title": draw(text),
                "image": [{"url": draw(url), "width": draw(st.integers(0, 4000))}],
            },
        )
    elif platform == "irc":
        activity.update(
            type=draw(st.sampled_from(["send", "join", "leave", "update", "query"])),
            actor={"id": f"{draw(text)}@irc.example", "type": "person", "name": draw(text)},
            target={"id": "chan@irc.example", "type": "room", "name": "#" + draw(text)},
            object=_with({"type": "message", "content": draw(text)}, draw(extras)),
        )
    else:
        activity.update(
            type=draw(st.sampled_from(["send", "update", "request-friend", "query"])),
            actor={"id": f"{draw(text)}@xmpp.example/res", "type": "person"},
            target={"id": "room@conference.xmpp.example", "type": "room"},
            object={"type": "presence", "presence": "away", "content": draw(text)},
        )
    return _with(activity, draw(extras))


moments = st.datetimes(
    min_value=datetime(2001, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
).map(lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000))
ids = st.text(min_size=1, max_size=40)
optional_text = st.none() | st.text(max_size=60)


@st.composite
def records(draw: st.DrawFn) -> Request | Result | PlatformEvent:
    platform = draw(st.sampled_from(PLATFORMS))
    activity = draw(activities(platform))
    common = {
        "session_id": draw(ids),
        "reply_route": draw(ids),
        "platform": platform,
        "verb": str(activity["type"]),
        "activity": activity,
        "created_at": draw(moments),
        "traceparent": draw(optional_text),
    }
    shape = draw(st.sampled_from(["request", "result", "event"]))
    if shape == "request":
        return Request(
            **common,
            correlation_id=draw(optional_text),
            activity_id=draw(ids),
            kind=draw(st.sampled_from(list(RequestKind))),
            attempt=draw(st.integers(0, 2**31 - 1)),
        )
    if shape == "result":
        return Result(
            **common,
            activity_id=draw(ids),
            error=draw(optional_text),
            correlation_id=draw(optional_text),
            completed_at=draw(moments),
        )
    return PlatformEvent(**common, event_id=draw(ids), error=draw(optional_text))
