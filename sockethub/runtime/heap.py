"""Keep the collector off the start-up heap of a long-running process.

By the time a gateway or runner serves, it holds many objects that live as long as
the process: modules, schemas, compiled validators, Kafka clients. CPython's full
collection walks all of them and stalls every connection while it does (measurements:
docs/performance-history.md). Freezing moves them to a generation the collector never
walks (``gc.freeze``); what the process allocates afterwards is collected as before.
"""

from __future__ import annotations

import gc

import structlog

log = structlog.get_logger("sockethub.heap")


def freeze_startup_heap(process: str) -> int:
    """Collect once, then exempt every surviving object from later collections.

    Returns how many objects were frozen. Call it once start-up is over.
    """
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info("startup_heap_frozen", process=process, objects=frozen)
    return frozen
