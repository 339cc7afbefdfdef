"""Real ngircd servers for the IRC tests: missing ngircd is a failure, never a skip."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.irc.ngircd import NGIRCD, Ngircd


def _require_ngircd() -> None:
    if not os.access(NGIRCD, os.X_OK):
        pytest.fail(f"ngircd is not installed ({NGIRCD}); `make test` installs it")


@pytest.fixture(scope="session")
def ngircd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ngircd]:
    """An open server (no password) for the whole run."""
    _require_ngircd()
    server = Ngircd(tmp_path_factory.mktemp("ngircd"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def ngircd_password(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ngircd]:
    """A server that wants the password ``letmein``."""
    _require_ngircd()
    server = Ngircd(tmp_path_factory.mktemp("ngircd-pw"), password="letmein")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def ngircd_factory(tmp_path: Path) -> Iterator[Callable[[], Ngircd]]:
    """Private servers a test may stop and restart."""
    _require_ngircd()
    started: list[Ngircd] = []

    def factory() -> Ngircd:
        server = Ngircd(tmp_path / f"ngircd-{len(started)}")
        server.start()
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()
