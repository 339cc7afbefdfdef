"""The demo's HTTP routes without a stack: what they serve, and the 503 when npm never ran."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from gateway.demo import NODE_MODULES, routes
from gateway.settings import GatewaySettings


def _client(settings: GatewaySettings, node_modules: Path = NODE_MODULES) -> httpx.AsyncClient:
    app = Starlette(routes=routes(settings, node_modules=node_modules))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://demo")


async def test_page_names_the_socket_path_and_loads_only_local_scripts() -> None:
    async with _client(GatewaySettings.model_validate({"path": "/custom-path"})) as client:
        page = await client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<meta name="sockethub-path" content="/custom-path">' in page.text
    for src in ("/socket.io.js", "/sockethub-client.js", "/demo/demo.js"):
        assert f'<script src="{src}"></script>' in page.text
    loaded = re.findall(r'(?:src|href)="([^"]*)"', page.text)
    assert loaded and all(u.startswith("/") or u.startswith("data:") for u in loaded), loaded
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp


@pytest.mark.parametrize(
    ("url", "marker"),
    [
        ("/socket.io.js", b"Socket.IO v4"),
        ("/sockethub-client.js", b"global.SockethubClient = SockethubClient"),
        ("/sockethub-client.min.js", b"SockethubClient"),
        ("/demo/demo.js", b"SockethubClient"),
    ],
)
async def test_bundles_from_npm(url: str, marker: bytes) -> None:
    assert (NODE_MODULES / "socket.io-client").is_dir(), "run `sockethub provision` first"
    async with _client(GatewaySettings.model_validate({})) as client:
        response = await client.get(url)
    assert response.status_code == 200, response.text[:200]
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert marker in response.content


async def test_global_build_is_served_not_the_esm_one() -> None:
    """A plain ``<script src="/sockethub-client.js">`` must work, as with Sockethub."""
    async with _client(GatewaySettings.model_validate({})) as client:
        body = (await client.get("/sockethub-client.js")).text
        esm = (await client.get("/sockethub-client.esm.js")).text
    assert "\nexport {" not in body and "\nexport {" in esm
    assert body.lstrip().startswith("(() => {")


async def test_missing_bundles_answer_503_with_a_hint(tmp_path: Path) -> None:
    async with _client(GatewaySettings.model_validate({}), node_modules=tmp_path) as client:
        for url in ("/socket.io.js", "/sockethub-client.js"):
            response = await client.get(url)
            assert response.status_code == 503
            assert response.text.count("\n") == 1
            assert "run `make run` or `sockethub provision`" in response.text
        page = await client.get("/")
    assert page.status_code == 200, "the page itself does not need npm"
