"""A small async client for a Confluent-compatible schema registry.

It implements ``schemas.registry.SchemaRegistry``, the protocol the codec uses; subject
names and the error type are part of the contract and live there.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
import orjson

from schemas.registry import SchemaRegistryError, subject_for

__all__ = ["SchemaRegistryClient", "SchemaRegistryError", "subject_for"]

_CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


def _canonical_json(schema: str | Mapping[str, Any]) -> str:
    parsed = orjson.loads(schema) if isinstance(schema, str) else schema
    return orjson.dumps(parsed, option=orjson.OPT_SORT_KEYS).decode()


def _split_credentials(url: str) -> tuple[str, tuple[str, str] | None, str]:
    """Return (url without userinfo, basic auth or None, url safe to print)."""
    parts = urlsplit(url)
    if parts.username is None:
        return url.rstrip("/"), None, url.rstrip("/")
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    bare = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)).rstrip("/")
    return bare, (parts.username, parts.password or ""), bare


class SchemaRegistryClient:
    """Register schemas and fetch them by id; fetched schemas are cached forever
    (a registry id never changes meaning)."""

    def __init__(
        self,
        url: str,
        *,
        http: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 10.0,
    ) -> None:
        """Credentials in ``url`` (``https://user:pass@host``) become basic auth and
        never appear in messages. ``transport`` is for tests (httpx.MockTransport)."""
        base, auth, self._display_url = _split_credentials(url)
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(
            base_url=base,
            auth=auth,
            transport=transport,
            timeout=timeout,
            headers={"Accept": _CONTENT_TYPE},
        )
        self._by_id: dict[int, str] = {}
        self._ids: dict[tuple[str, str], int] = {}
        self._offline = False

    @classmethod
    def preset(cls, schemas: Mapping[int, str | Mapping[str, Any]]) -> SchemaRegistryClient:
        """An in-process registry that knows exactly these ids and makes no HTTP
        calls: ``register`` and ``lookup`` answer the id of an identical schema."""
        client = cls("http://preset.invalid")
        client._offline = True
        for schema_id, schema in schemas.items():
            text = schema if isinstance(schema, str) else orjson.dumps(schema).decode()
            client._by_id[schema_id] = text
            parsed = orjson.loads(text)
            client._ids[(subject_for(parsed), _canonical_json(parsed))] = schema_id
        return client

    @property
    def url(self) -> str:
        """The registry URL without credentials."""
        return self._display_url

    def cached(self, schema_id: int) -> str | None:
        return self._by_id.get(schema_id)

    async def register(self, subject: str, schema: str | Mapping[str, Any]) -> int:
        """Register ``schema`` under ``subject`` (idempotent) and return its id."""
        key = (subject, _canonical_json(schema))
        if key in self._ids:
            return self._ids[key]
        if self._offline:
            raise SchemaRegistryError(f"preset registry has no schema for subject {subject!r}")
        body = await self._post(f"/subjects/{quote(subject, safe='')}/versions", key[1])
        if body is None:
            raise SchemaRegistryError(f"schema registry {self._display_url}: no such subject")
        schema_id = int(body["id"])
        self._ids[key] = schema_id
        self._by_id.setdefault(schema_id, key[1])
        return schema_id

    async def lookup(self, subject: str, schema: str | Mapping[str, Any]) -> int | None:
        """The id of ``schema`` if it is registered under ``subject``, else None."""
        key = (subject, _canonical_json(schema))
        if key in self._ids:
            return self._ids[key]
        if self._offline:
            return None
        body = await self._post(f"/subjects/{quote(subject, safe='')}", key[1], missing_ok=True)
        if body is None:
            return None
        schema_id = int(body["id"])
        self._ids[key] = schema_id
        self._by_id.setdefault(schema_id, key[1])
        return schema_id

    async def get_schema(self, schema_id: int) -> str:
        """The schema JSON text registered under ``schema_id``."""
        if schema_id in self._by_id:
            return self._by_id[schema_id]
        if self._offline:
            raise SchemaRegistryError(f"preset registry has no schema id {schema_id}")
        body = await self._request("GET", f"/schemas/ids/{schema_id}")
        if body is None or body.get("schemaType", "AVRO") != "AVRO":
            raise SchemaRegistryError(f"schema id {schema_id} is not an Avro schema")
        text = str(body["schema"])
        self._by_id[schema_id] = text
        return text

    async def _post(
        self, path: str, schema_json: str, *, missing_ok: bool = False
    ) -> dict[str, Any] | None:
        return await self._request(
            "POST", path, content=orjson.dumps({"schema": schema_json}), missing_ok=missing_ok
        )

    async def _request(
        self, method: str, path: str, *, content: bytes | None = None, missing_ok: bool = False
    ) -> dict[str, Any] | None:
        headers = {"Content-Type": _CONTENT_TYPE} if content is not None else None
        try:
            response = await self._http.request(method, path, content=content, headers=headers)
        except httpx.HTTPError as exc:
            raise SchemaRegistryError(
                f"schema registry {self._display_url} unreachable: {type(exc).__name__}"
            ) from None
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code >= 400:
            try:
                message = str(response.json().get("message", ""))[:300]
            except ValueError:
                message = ""
            raise SchemaRegistryError(
                f"schema registry {self._display_url}: {method} {path} answered "
                f"{response.status_code} {message}".rstrip()
            )
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise SchemaRegistryError(
                f"schema registry {self._display_url}: {method} {path} answered non-JSON"
            )
        return body

    async def close(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> SchemaRegistryClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
