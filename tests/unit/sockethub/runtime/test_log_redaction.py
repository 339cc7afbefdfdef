"""No frame locals, payloads or credentials reach a log line, in either format."""

from __future__ import annotations

import logging

import pytest
import structlog

from sockethub.runtime.observability import configure_logging
from sockethub.runtime.redaction import REDACTED, redact, scrub_text
from sockethub.runtime.settings import CommonSettings

PASSWORD = "hunter2-c0rrect-h0rse"
CONTENT = "a private message body"


def _handle(payload: dict[str, object]) -> None:
    # ``payload`` and ``secret`` are frame locals that a traceback with locals would show.
    secret = PASSWORD
    raise ValueError(f"cannot handle {type(payload).__name__} ({len(secret)})")


def _payload() -> dict[str, object]:
    return {
        "type": "connect",
        "object": {"type": "message", "content": CONTENT},
        "credentials": {"object": {"password": PASSWORD}},
        "nested": [{"SASL_Password": PASSWORD}, {"accessToken": PASSWORD}],
    }


@pytest.mark.parametrize("log_format", ["json", "console"])
def test_forced_exception_leaks_no_password(
    log_format: str, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(CommonSettings(log_format=log_format), process="test")  # type: ignore[arg-type]
    payload = _payload()
    try:
        _handle(payload)
    except ValueError:
        structlog.get_logger("sockethub.test").exception("handler.failed", payload=payload)
        structlog.get_logger("sockethub.test").error("handler.args", password=PASSWORD)
        logging.getLogger("some.library").exception("failed on %r", payload)
        logging.getLogger("some.library").error("retrying with %s", {"token": PASSWORD})
    err = capsys.readouterr().err
    assert "handler.failed" in err and "failed on" in err and "retrying with" in err
    assert "cannot handle dict" in err  # the traceback itself is still there
    assert PASSWORD not in err
    assert CONTENT in err  # only credentials are redacted from a logged structure
    assert "secret =" not in err and "'secret':" not in err  # no frame locals at all


def test_redact_nested_and_case_insensitive() -> None:
    value = {"Credentials": {"x": 1}, "a": [{"b": ({"PassWord": "p"},)}], "n": 3}
    assert redact(value) == {
        "Credentials": REDACTED,
        "a": [{"b": ({"PassWord": REDACTED},)}],
        "n": 3,
    }
    assert redact("plain") == "plain"


def test_scrub_text_pairs() -> None:
    text = "input_value={'password': 'x y', \"token\": \"t\", secret=abc, other: 1}"
    scrubbed = scrub_text(text)
    assert "x y" not in scrubbed and '"t"' not in scrubbed and "abc" not in scrubbed
    assert "other: 1" in scrubbed


def test_deep_structure_is_bounded() -> None:
    deep: list[object] = []
    for _ in range(2000):
        deep = [deep]
    assert REDACTED in repr(redact(deep))
