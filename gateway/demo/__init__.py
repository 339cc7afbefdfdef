"""The demo page at ``/`` and the browser bundles that Sockethub web apps load from the gateway.

The bundles come from npm (``package.json`` beside this file; ``sockethub provision`` runs
``npm ci`` here) and are never committed. Like Sockethub, ``/sockethub-client.js`` is the
client's global (IIFE) build, so a plain ``<script>`` tag defines ``SockethubClient``; the
ESM build is at ``/sockethub-client.esm.js``. When ``node_modules`` is missing the bundle
routes answer 503 with a one-line hint instead of failing.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from gateway.settings import GatewaySettings

HERE = Path(__file__).resolve().parent
NODE_MODULES = HERE / "node_modules"
MISSING_HINT = "{name} is not installed: run `make run` or `sockethub provision`\n"
JS = "text/javascript; charset=utf-8"

BUNDLES: dict[str, tuple[str, str]] = {
    "/socket.io.js": ("socket.io-client", "dist/socket.io.js"),
    "/socket.io.js.map": ("socket.io-client", "dist/socket.io.js.map"),
    "/sockethub-client.js": ("@sockethub/client", "dist/sockethub-client.browser.js"),
    "/sockethub-client.min.js": ("@sockethub/client", "dist/sockethub-client.min.js"),
    "/sockethub-client.esm.js": ("@sockethub/client", "dist/sockethub-client.js"),
}
"""URL path -> (npm package, file inside it)."""

ASSETS: dict[str, tuple[str, str]] = {
    "/demo/demo.js": ("demo.js", JS),
    "/demo/demo.css": ("demo.css", "text/css; charset=utf-8"),
}

PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data: http: https:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
"""Feed and page content is untrusted: the page only ever inserts it as text, and this
policy keeps any script the gateway did not serve from running anyway."""


Endpoint = Callable[[Request], Response]


def _bundle_endpoint(path: Path, package: str) -> Endpoint:
    media_type = "application/json" if path.suffix == ".map" else JS

    def serve(request: Request) -> Response:  # sync: Starlette runs it in a worker thread
        if not path.is_file():
            return PlainTextResponse(MISSING_HINT.format(name=package), status_code=503)
        # Any origin may load the bundles, as from Sockethub: web apps live elsewhere.
        headers = {"Access-Control-Allow-Origin": "*", "Cache-Control": "no-cache"}
        return FileResponse(path, media_type=media_type, headers=headers)

    return serve


def _asset_endpoint(path: Path, media_type: str) -> Endpoint:
    def serve(request: Request) -> Response:
        return FileResponse(path, media_type=media_type, headers={"Cache-Control": "no-cache"})

    return serve


def bundle_routes(*, node_modules: Path = NODE_MODULES) -> list[BaseRoute]:
    """The client bundles, served whether or not the demo is: web apps load them."""
    return [
        Route(url, _bundle_endpoint(node_modules / package / relative, package), name=url)
        for url, (package, relative) in BUNDLES.items()
    ]


def routes(settings: GatewaySettings, *, node_modules: Path = NODE_MODULES) -> list[BaseRoute]:
    """``/`` (the demo), the bundles and the demo's own assets, for ``create_app``."""
    page = (HERE / "index.html").read_text(encoding="utf-8")
    page = page.replace("{{SOCKETHUB_PATH}}", html.escape(settings.path, quote=True))

    async def index(request: Request) -> HTMLResponse:
        return HTMLResponse(
            page,
            headers={"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-cache"},
        )

    result: list[BaseRoute] = [Route("/", index)]
    result += bundle_routes(node_modules=node_modules)
    for url, (filename, media_type) in ASSETS.items():
        result.append(Route(url, _asset_endpoint(HERE / filename, media_type), name=url))
    return result
