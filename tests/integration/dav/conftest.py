"""One Radicale for the DAV tests (session-scoped, like the other peers)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.dav.radicale import Radicale

USERS = {"alice": "alice-secret-1", "bob": "bob-secret-2"}


@pytest.fixture(scope="session")
def radicale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Radicale]:
    server = Radicale(tmp_path_factory.mktemp("radicale"), dict(USERS))
    server.start()
    yield server
    server.stop()
