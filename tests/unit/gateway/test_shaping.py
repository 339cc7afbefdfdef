"""Acknowledgements in the shape of each dialect (spec sections 2, 6 and 7)."""

from __future__ import annotations

from gateway.shaping import detect_dialect, error_ack, error_event, result_ack

CTX = [
    "https://www.w3.org/ns/activitystreams",
    "https://sockethub.org/ns/context/v1.jsonld",
    "https://sockethub.org/ns/context/platform/dummy/v1.jsonld",
]


def test_dialect_detection() -> None:
    assert detect_dialect({"@context": CTX, "type": "echo"}) == "g3"
    assert detect_dialect({"context": "dummy", "type": "echo"}) == "g2"
    assert detect_dialect({"context": "dummy", "@context": CTX}) == "g3"
    assert detect_dialect({"context": 5}) == "g3"
    assert detect_dialect("text") == "g3"
    assert detect_dialect(None) == "g3"


def test_g3_errors_are_the_request_plus_error() -> None:
    request = {"@context": CTX, "type": "nope", "actor": {"id": "a", "type": "person"}}
    ack = error_ack(request, "[dummy] /type: must be equal to one of the allowed values")
    assert ack == {**request, "error": "[dummy] /type: must be equal to one of the allowed values"}
    assert "error" not in request


def test_non_objects_get_a_bare_error() -> None:
    assert error_ack("hi", "message received is not an object.") == {
        "error": "message received is not an object."
    }
    assert error_ack(42, "x") == {"error": "x"}


def test_g2_errors_wrap_the_original() -> None:
    request = {"context": "dummy", "type": "fail", "actor": "jimmy"}
    assert error_ack(request, "Error: boom") == {
        "context": "error",
        "error": "Error: boom",
        "content": request,
    }


def test_results_per_dialect() -> None:
    result = {"@context": CTX, "type": "echo", "actor": {"id": "dummy", "type": "platform"}}
    assert result_ack(result, "dummy", "g3") == result
    g2 = result_ack(result, "dummy", "g2")
    assert g2 == {"context": "dummy", **result}


def test_failed_results_for_g2_wrap_what_the_client_sent() -> None:
    sent = {"context": "dummy", "type": "fail", "actor": "jimmy", "object": "boom"}
    failed = {"@context": CTX, "type": "fail", "actor": {"id": "jimmy"}, "error": "Error: boom"}
    assert result_ack(failed, "dummy", "g2", original=sent) == {
        "context": "error",
        "error": "Error: boom",
        "content": sent,
    }
    assert result_ack(failed, "dummy", "g3", original=sent) == failed
    unsolicited = result_ack(failed, "dummy", "g2")
    assert unsolicited["content"]["context"] == "dummy"
    assert "error" not in unsolicited["content"]


def test_error_event_shape() -> None:
    event = error_event("rate limit exceeded, temporarily blocked")
    assert event == {
        "type": "Error",
        "@context": CTX[:2],
        "actor": {"type": "Application", "name": "sockethub-server"},
        "summary": "rate limit exceeded, temporarily blocked",
    }
