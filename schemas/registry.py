"""What the codec needs of a schema registry: subject names, the error, the calls.

Subjects follow the record-name strategy: the subject of a schema is its full record
name (``org.sockethub.v1.Request``), so one subject serves every topic that carries
that record type (requests, dead letters, the audit topic). The HTTP client that
speaks to a Confluent-compatible registry is runtime plumbing
(``sockethub.runtime.schema_registry``); the codec sees only this protocol.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class SchemaRegistryError(Exception):
    """The registry refused a request or could not be reached."""


def subject_for(schema: Mapping[str, Any]) -> str:
    """Record-name strategy: the schema's full name."""
    name = str(schema["name"])
    namespace = schema.get("namespace")
    return name if "." in name or not namespace else f"{namespace}.{name}"


class SchemaRegistry(Protocol):
    async def register(self, subject: str, schema: str | Mapping[str, Any]) -> int: ...

    async def lookup(self, subject: str, schema: str | Mapping[str, Any]) -> int | None: ...

    async def get_schema(self, schema_id: int) -> str: ...

    async def close(self) -> None: ...
