"""The demo page in a real browser: Debian's chromium, driven by playwright-core.

The real stack runs behind it: Kafka and Redis (session fixtures), a gateway process,
dummy, feeds, caldav and carddav runner processes, a loopback HTTP server with a small RSS
feed and the DAV tests' Radicale (both allow-listed for the runners). The page is the one
the gateway serves at ``/``, with the bundles it serves at ``/socket.io.js`` and
``/sockethub-client.js``.

A missing chromium, node or playwright-core fails the test: it is never a skip.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from platform_runners.registry import BUILTINS
from sockethub.devstack.processes import free_port
from tests.fixtures.gateway import REPO, GatewayFactory, http_get, wait_ready
from tests.fixtures.radicale import USERS, Radicale
from tests.fixtures.runners import RunnerStack, started_runners

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.timeout(600)]

HERE = Path(__file__).resolve().parent
FEED = HERE / "feed.xml"
DRIVER = HERE / "drive_demo.mjs"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts"
PLATFORMS = ("dummy", "feeds", "metadata", "irc", "xmpp", "caldav", "carddav")
FEED_TITLES = [  # newest first, as the feeds platform lists them
    'Third post: <script>alert("not run")</script>',
    "Second post: runners behind Kafka",
    "First post: the gateway speaks Sockethub",
]


class _FeedHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path != "/feed.xml":
            self.send_error(404)
            return
        body = FEED.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def feed_url() -> Iterator[str]:
    """``http://127.0.0.1:<port>/feed.xml``, served from a thread of the test process."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FeedHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/feed.xml"
    finally:
        server.shutdown()
        server.server_close()


def _entry_point_shim(root: Path) -> str | None:
    """Declares the feeds platform as a ``sockethub.platforms`` entry point, only while the
    runner registry does not list it as a built-in yet (the runner finds it either way)."""
    if "feeds" in BUILTINS:
        return None
    dist = root / "sockethub_demo_feeds-0.0.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: sockethub-demo-feeds\nVersion: 0.0.0\n"
    )
    (dist / "entry_points.txt").write_text(
        "[sockethub.platforms]\nfeeds = platform_runners.feeds:FeedsPlatform\n"
    )
    return str(root)


@pytest.fixture
def demo_stack(
    kafka_bootstrap: str, redis_url: str, stack_env: dict[str, str], tmp_path: Path
) -> Iterator[RunnerStack]:
    """Dummy, feeds and DAV runners on their own topic prefix, loopback and plain-http DAV
    allowed (these two settings only in this stack's runners)."""
    env = {
        **stack_env,
        "SOCKETHUB_FETCH_ALLOWLIST": "127.0.0.0/8",
        "SOCKETHUB_DAV_ALLOW_INSECURE_HTTP": "true",
    }
    shim = _entry_point_shim(tmp_path / "shim")
    if shim is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (shim, os.environ.get("PYTHONPATH")) if p)
    stack = RunnerStack(
        kafka_bootstrap, redis_url, f"demo{uuid.uuid4().hex[:8]}", tmp_path / "logs", env
    )
    with started_runners(stack, "dummy", "feeds", "caldav", "carddav", timeout=240):
        yield stack


def _browser_tooling() -> list[str]:
    """What is missing to drive the browser (an empty list when all is there)."""
    missing = []
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        missing.append(f"chromium ({CHROMIUM}; apt-get install chromium)")
    if shutil.which("node") is None:
        missing.append("node (Node.js 20)")
    if not (HERE / "node_modules" / "playwright-core" / "package.json").is_file():
        missing.append(f"playwright-core in {HERE} (run `sockethub provision --tests`)")
    return missing


def test_demo_page_in_chromium(
    gateway_factory: GatewayFactory,
    demo_stack: RunnerStack,
    feed_url: str,
    radicale: Radicale,
    tmp_path: Path,
) -> None:
    missing = _browser_tooling()
    assert not missing, "the browser test needs: " + "; ".join(missing)

    # The page's origin must be an allowed one, as http://127.0.0.1:10550 is for `make run`;
    # so the port is chosen here (the factory records its own pick, hence the replace).
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    started = gateway_factory(
        topic_prefix=demo_stack.prefix,
        port=port,
        allowed_origins=origin,
        demo="true",
        wait=False,
    )
    gateway = dataclasses.replace(started, port=port)
    wait_ready(gateway)
    status, body = http_get(f"{gateway.url}/socket.io.js")
    assert status == 200, f"/socket.io.js answered {status}: {body[:200]!r}"

    name = uuid.uuid4().hex[:8]
    calendar = f"Demo calendar {name}"
    book = f"Demo contacts {name}"
    radicale.mkcalendar("alice", f"/alice/cal-{name}/", calendar, ("VEVENT",))
    radicale.mkaddressbook("alice", f"/alice/book-{name}/", book)
    dav = {
        "url": radicale.url,
        "username": "alice",
        "password": USERS["alice"],
        "wrongPassword": "not-" + USERS["alice"],
        "calendar": calendar,
        "book": book,
        # Markup in a name must come back as text, never as elements.
        "event": f"Launch {name} <img src=x onerror=alert(1)>",
        "contact": f"Carol {name} <b>bold</b>",
    }
    screenshot = tmp_path / "demo.png"
    run = subprocess.run(
        ["node", str(DRIVER), f"{origin}/", feed_url, str(screenshot), json.dumps(dav)],
        cwd=HERE,
        env={**os.environ, "CHROMIUM": CHROMIUM},
        capture_output=True,
        text=True,
        timeout=420,
        check=False,
    )
    assert run.returncode == 0, (
        f"browser run failed ({run.returncode}):\n{run.stderr[-4000:]}\n{run.stdout[-2000:]}\n"
        f"gateway log:\n{gateway.log_text()[-3000:]}"
    )
    seen = json.loads(run.stdout.strip().splitlines()[-1])

    assert seen["problems"] == [], seen["problems"]
    assert seen["status"].startswith("Connected to 127.0.0.1:"), seen["status"]
    assert all(p in seen["platforms"] for p in PLATFORMS)
    assert seen["echo"] == "dummy answered echo: hello from headless chromium"

    assert seen["feedSummary"] == "Demo Test Feed: 3 items"
    assert [item["title"] for item in seen["feedItems"]] == FEED_TITLES
    hrefs = [item["href"] for item in seen["feedItems"]]
    assert hrefs[1:] == ["http://127.0.0.1/posts/2", "http://127.0.0.1/posts/1"]
    assert hrefs[0] is None or hrefs[0].startswith("http"), "a javascript: link became a link"

    got = seen["dav"]
    # A wrong password is accepted as credentials; the server refuses it on the first use.
    assert not got["wrongLogin"]["error"], got["wrongLogin"]
    assert got["wrongList"] == {"text": "caldav:authentication-failed", "error": True}
    assert not got["login"]["error"] and "alice@127.0.0.1:" in got["login"]["text"]
    assert not got["calendars"]["error"] and got["calendars"]["text"].endswith(
        (" calendar.", " calendars.")
    )
    created = got["eventCreated"]
    assert not created["error"] and created["text"].startswith(f"Created {dav['event']}: "), created
    assert f"/alice/cal-{name}/" in created["text"] and "(ETag " in created["text"], created
    assert got["eventsShown"] == {"text": "1 event.", "error": False}
    [event] = got["events"]
    assert event["text"].startswith(dav["event"]) and "ETag " in event["text"], event
    assert event["elements"] == 0, "an event name became markup"
    assert not got["books"]["error"] and not got["contactCreated"]["error"], got
    assert got["contactsShown"] == {"text": "1 contact.", "error": False}
    [contact] = got["contacts"]
    assert contact["text"].startswith(dav["contact"]) and "demo@example.org" in contact["text"]
    assert contact["elements"] == 0, "a contact name became markup"
    assert not got["passwordInLog"], "a DAV password was shown in the traffic pane"

    out = [t["event"] for t in seen["traffic"] if t["direction"] == "out"]
    assert out[:3] == ["schemas", "message", "message"], seen["traffic"]
    assert out.count("credentials") == 4, seen["traffic"]  # caldav and carddav, twice
    failed = [t["event"] for t in seen["traffic"] if t["failed"]]
    assert failed == ["message ack"], seen["traffic"]  # the wrong password's listing only
    assert screenshot.stat().st_size > 10_000
    ARTIFACTS.mkdir(exist_ok=True)  # a copy where `make test` keeps its artefacts
    shutil.copyfile(screenshot, ARTIFACTS / "demo.png")
