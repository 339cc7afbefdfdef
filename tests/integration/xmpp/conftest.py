"""A real Prosody for the XMPP tests: missing prosody is a failure, never a skip."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.xmpp.prosody import PROSODY, PROSODYCTL, Prosody

PASSWORD = "correct horse battery"


def _require_prosody() -> None:
    for binary in (PROSODY, PROSODYCTL):
        if not os.access(binary, os.X_OK):
            pytest.fail(f"prosody is not installed ({binary}); `make test` installs it")


class Accounts:
    """Fresh accounts on a running server (prosodyctl writes the data dir directly)."""

    def __init__(self, server: Prosody) -> None:
        self.server = server

    def new(self, prefix: str = "u") -> str:
        return self.server.register(f"{prefix}{uuid.uuid4().hex[:8]}", PASSWORD)


@pytest.fixture(scope="session")
def prosody(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prosody]:
    _require_prosody()
    server = Prosody(tmp_path_factory.mktemp("prosody"))
    server.write_config()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def accounts(prosody: Prosody) -> Accounts:
    return Accounts(prosody)


@pytest.fixture
def prosody_factory(tmp_path: Path) -> Iterator[Callable[[], Prosody]]:
    """Private servers a test may stop and restart."""
    _require_prosody()
    started: list[Prosody] = []

    def factory() -> Prosody:
        server = Prosody(tmp_path / f"prosody-{len(started)}")
        server.write_config()
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()
