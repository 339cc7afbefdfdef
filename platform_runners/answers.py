"""The records a runner sends: results, error results, crash notices, events, dead letters.

Pure construction (encode and address); *when* to send them is the :class:`Runner`'s job.
"""

from __future__ import annotations

import copy

from aiokafka import ConsumerRecord
from aiokafka.structs import TopicPartition

from platform_runners.committer import Outgoing
from platform_runners.platform import json_copy
from schemas.codec import Codec
from schemas.envelopes import JSONDict, PlatformEvent, Request, Result
from schemas.platform_registry import canonical_context
from schemas.topics import TopicLayout

HEADER_REASON = "sockethub-reason"
"""A dead letter's short reason label; the same label as on ``sockethub_runner_dead_letters``."""
REASONS = ("crash", "undecodable", "not_a_request", "foreign_reply_route")


def crash_text(exit_code: str) -> str:
    return f"Error: session thread closed unexpectedly: {exit_code}"


class Answers:
    """Builds one platform's outgoing records, keyed by session id."""

    def __init__(self, codec: Codec, layout: TopicLayout, platform: str) -> None:
        self.codec = codec
        self.layout = layout
        self.platform = platform
        self.context = canonical_context(platform)

    def encode(self, topic: str, session_id: str, record: Result | PlatformEvent) -> Outgoing:
        value, headers = self.codec.encode(record)
        return Outgoing(topic, session_id.encode(), value, headers)

    def result(self, request: Request, value: JSONDict | None) -> Outgoing:
        """The answer: ``value``, or the request itself where the platform returned nothing."""
        activity = json_copy(request.activity) if value is None else value
        return self._answer(request, activity, None)

    def error(self, request: Request, error: str) -> Outgoing:
        """The request plus ``error``, as the spec answers failures."""
        activity = json_copy(request.activity)
        activity["error"] = error
        return self._answer(request, activity, error)

    def _answer(self, request: Request, activity: JSONDict, error: str | None) -> Outgoing:
        activity["@context"] = list(self.context)
        result = Result(
            activity_id=request.activity_id,
            session_id=request.session_id,
            reply_route=request.reply_route,
            platform=self.platform,
            verb=request.verb,
            activity=activity,
            error=error,
            correlation_id=request.correlation_id,
            created_at=request.created_at,
            traceparent=request.traceparent,
        )
        return self.encode(request.reply_route, request.session_id, result)

    def crash_notice(self, request: Request, exit_code: str) -> Outgoing:
        error = crash_text(exit_code)
        activity: JSONDict = {
            "@context": list(self.context),
            "type": "error",
            "actor": {"id": self.platform, "type": "platform"},
            "error": error,
        }
        if isinstance(request.activity.get("actor"), dict):
            activity["target"] = copy.deepcopy(request.activity["actor"])
        if request.correlation_id is not None:
            activity["id"] = request.correlation_id
        event = PlatformEvent(
            session_id=request.session_id,
            reply_route=request.reply_route,
            platform=self.platform,
            verb="error",
            activity=activity,
            error=error,
        )
        return self.encode(request.reply_route, request.session_id, event)

    def event(
        self,
        session_id: str,
        route: str,
        activity: JSONDict,
        *,
        verb: str | None = None,
        error: str | None = None,
    ) -> Outgoing:
        """An unsolicited event (the platform's ``emit``), with the canonical ``@context``."""
        body = dict(activity)
        body["@context"] = list(self.context)
        event = PlatformEvent(
            session_id=session_id,
            reply_route=route,
            platform=self.platform,
            verb=verb or str(body.get("type", "")),
            activity=body,
            error=error,
        )
        return self.encode(route, session_id, event)

    @staticmethod
    def error_headers(
        tp: TopicPartition, offset: int, error: str, attempts: int, exit_code: str, reason: str
    ) -> list[tuple[str, bytes]]:
        return [
            ("sockethub-error", error.encode()),
            (HEADER_REASON, reason.encode()),
            ("sockethub-attempts", str(attempts).encode()),
            ("sockethub-source", f"{tp.topic}/{tp.partition}/{offset}".encode()),
            ("sockethub-exit-code", exit_code.encode()),
        ]

    def dead_letter_raw(
        self, tp: TopicPartition, message: ConsumerRecord, error: str, reason: str
    ) -> Outgoing:
        """A record that is not a request, as it was read, plus the error headers."""
        extra = self.error_headers(tp, message.offset, error, 0, "", reason)
        headers = [*(message.headers or ()), *extra]
        topic = self.layout.dead_letters(self.platform)
        return Outgoing(topic, message.key, message.value or b"", headers)

    def dead_letter(
        self,
        request: Request,
        tp: TopicPartition,
        offset: int,
        error: str,
        attempts: int,
        exit_code: str,
    ) -> Outgoing:
        """A request given up on, re-encoded, plus the error headers."""
        value, headers = self.codec.encode(request)
        headers += self.error_headers(tp, offset, error, attempts, exit_code, "crash")
        topic = self.layout.dead_letters(self.platform)
        return Outgoing(topic, request.session_id.encode(), value, headers)
