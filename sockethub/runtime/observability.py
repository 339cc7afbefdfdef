"""Structured logging set-up shared by every process of the project.

structlog loggers and the standard library's (uvicorn, aiokafka, redis, asyncio) end in
the same renderer, so with ``SOCKETHUB_LOG_FORMAT=json`` every line on stderr is JSON.
"""

from __future__ import annotations

import logging
import sys

import structlog
from structlog.typing import EventDict, WrappedLogger

from sockethub.runtime.redaction import redact
from sockethub.runtime.settings import CommonSettings


class _SockethubHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the root handler this module installed, so a second call replaces it."""


_LIBRARY_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "aiokafka")

# Frame locals hold message content and passwords: a traceback names frames, never values.
_dict_tracebacks = structlog.processors.ExceptionRenderer(
    structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
)

# Processor bookkeeping, not logged data: left as they are.
_UNTOUCHED = frozenset({"exc_info", "_record", "_from_structlog"})


def redact_secrets(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Replaces credentials anywhere in the event, nested structures and message text included.

    Runs last before rendering, so it also sees what a traceback or a library's formatted
    message added."""
    return {
        key: value if key in _UNTOUCHED else redact({key: value})[key]
        for key, value in event_dict.items()
    }


def configure_logging(settings: CommonSettings, *, process: str) -> None:
    """JSON lines (or console lines) on stderr, each with ``process`` naming the emitter.

    Safe to call again (the CLI configures logging before the command's own code does)."""
    level = logging.getLevelName(settings.log_level)
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if settings.log_format == "json"
        else structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    )
    # The console renderer prints a traceback given as text (a dict would break it); the plain
    # formatter, like the dict one above, shows no locals.
    tracebacks: structlog.typing.Processor = (
        _dict_tracebacks
        if settings.log_format == "json"
        else structlog.processors.ExceptionRenderer()
    )
    stamp = structlog.processors.TimeStamper(fmt="iso", utc=True)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            stamp,
            tracebacks,
            redact_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(process=process)

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            stamp,
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            tracebacks,
            redact_secrets,
            renderer,
        ],
    )
    handler = _SockethubHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _SockethubHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    # A library that configured its own loggers (uvicorn does, unless told not to) would
    # print plain text beside the JSON: its records go through the root handler instead.
    for name in _LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        library.handlers.clear()
        library.propagate = True
    # Libraries log chatty INFO records: only their warnings and errors are kept.
    root.setLevel(max(level, logging.WARNING))
