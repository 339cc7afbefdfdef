"""HAProxy (cookie stickiness, ``option forwardfor``) in front of two gateways: clients
from distinct loopback addresses are all served, the per-address cap holds across both
gateways and counts handshakes, and without stickiness long-polling fails as
docs/deploy.md warns."""

from __future__ import annotations

from collections import Counter

import pytest

from gateway.limits import TOO_MANY_CONNECTIONS
from tests.e2e.proxy.conftest import CAP, Topology
from tests.e2e.proxy.topology import (
    BoundClient,
    Outcome,
    handshake_only,
    haproxy,
    run_clients,
)

pytestmark = [pytest.mark.kafka, pytest.mark.redis]

REFUSED = f"refused: {TOO_MANY_CONNECTIONS}"


def sources(subnet: int, count: int) -> list[str]:
    """``count`` distinct loopback client addresses in 127.0.<subnet>.0/24 (each test has
    its own subnet: the cap's counts of one never meet another's)."""
    return [f"127.0.{subnet}.{n}" for n in range(2, 2 + count)]


def report(capsys: pytest.CaptureFixture[str], title: str, outcomes: list[Outcome]) -> None:
    results = Counter(o.result for o in outcomes)
    servers = Counter(o.server for o in outcomes if o.result == "answered")
    with capsys.disabled():
        print(f"\n[proxy] {title}: {dict(results)}; answered per gateway {dict(servers)}")


async def test_distinct_clients_are_all_answered_through_sticky_haproxy(
    topology: Topology, capsys: pytest.CaptureFixture[str]
) -> None:
    with haproxy(topology.gateways, topology.workdir, sticky=True) as url:
        upgrading = await run_clients(url, sources(11, 60), ["polling", "websocket"])
        polling = await run_clients(url, sources(12, 20), ["polling"])
    report(capsys, "60 clients on polling,websocket", upgrading)
    report(capsys, "20 clients on polling", polling)
    assert [o.result for o in upgrading] == ["answered"] * 60, upgrading
    assert [o.result for o in polling] == ["answered"] * 20, polling
    # Both gateways served: the proxy spread the clients and each gateway saw each
    # client's own address (one per address, far under the cap).
    assert {o.server for o in upgrading + polling} == {"g1", "g2"}


async def test_the_cap_holds_across_both_gateways(
    topology: Topology, capsys: pytest.CaptureFixture[str]
) -> None:
    source = "127.0.13.2"
    with haproxy(topology.gateways, topology.workdir, sticky=True) as url:
        outcomes = await run_clients(url, [source] * 25, ["polling", "websocket"])
    report(capsys, "25 clients from one address", outcomes)
    results = Counter(o.result for o in outcomes)
    assert results == {"answered": CAP, REFUSED: 25 - CAP}, outcomes
    assert {o.server for o in outcomes if o.result == "answered"} == {"g1", "g2"}


async def test_engineio_handshakes_count_before_any_socketio_connect(
    topology: Topology, capsys: pytest.CaptureFixture[str]
) -> None:
    source = "127.0.14.2"
    with haproxy(topology.gateways, topology.workdir, sticky=True) as url:
        servers = [await handshake_only(url, source) for _ in range(CAP)]
        late = BoundClient(source, ["polling"])
        try:
            outcome = await (await late.connect(url)).probe("late")
        finally:
            await late.close()
        other = await run_clients(url, ["127.0.14.3"], ["polling"])
    with capsys.disabled():
        print(f"\n[proxy] after {CAP} bare handshakes ({Counter(servers)}): {outcome.result}")
    assert set(servers) == {"g1", "g2"}
    assert outcome.result == REFUSED
    assert [o.result for o in other] == ["answered"]


async def test_without_stickiness_long_polling_fails(
    topology: Topology, capsys: pytest.CaptureFixture[str]
) -> None:
    """The failure docs/deploy.md warns about: a polling session's requests alternate
    between gateways, and the one that did not make the handshake does not know it."""
    outcomes = []
    with haproxy(topology.gateways, topology.workdir, sticky=False) as url:
        for source in sources(15, 10):  # one at a time: round robin alternates strictly
            outcomes += await run_clients(url, [source], ["polling"])
    report(capsys, "10 polling clients, round robin without stickiness", outcomes)
    # The handshake's follow-up requests (the CONNECT packet's POST and the first poll)
    # go out together, and round robin sends one of them to the other gateway.
    assert {o.result for o in outcomes} == {"failed: engine.io session lost while connecting"}
