"""Structured logging set-up shared by every process of the project."""

from __future__ import annotations

import logging
import sys

import structlog

from sockethub.runtime.settings import CommonSettings


def configure_logging(settings: CommonSettings, *, process: str) -> None:
    """JSON lines (or console lines) on stderr, each with ``process`` naming the emitter."""
    level = logging.getLevelName(settings.log_level)
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if settings.log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.dict_tracebacks,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(process=process)
    logging.basicConfig(level=max(level, logging.WARNING), stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")  # fmt: skip
