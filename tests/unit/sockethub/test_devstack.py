from __future__ import annotations

import base64
from pathlib import Path

import pytest

from sockethub.devstack import processes
from sockethub.devstack.kafka import KafkaBroker, new_cluster_id


def test_cluster_ids_are_16_bytes_and_never_look_like_flags() -> None:
    ids = {new_cluster_id() for _ in range(3000)}
    assert len(ids) == 3000
    for cluster_id in ids:
        assert not cluster_id.startswith("-")
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_the_broker_promotes_survivors_at_their_first_collection(tmp_path: Path) -> None:
    broker = KafkaBroker(tmp_path)
    full = broker._java(tmp_path, "kafka.Kafka", "server.properties", quick=False)
    quick = broker._java(tmp_path, "kafka.Kafka", "server.properties", quick=True)
    assert "-XX:TieredStopAtLevel=1" in quick
    assert "-XX:TieredStopAtLevel=1" not in full
    for cmd in (full, quick):
        assert cmd.index("-XX:MaxTenuringThreshold=1") < cmd.index("kafka.Kafka")
        assert cmd[-2:] == ["kafka.Kafka", "server.properties"]


def test_free_port_never_hands_out_a_port_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing holds a port between free_port() and its use: the kernel may offer the same
    one to the next call, and two servers of one stack then fight over it."""
    offered = iter([40001, 40001, 40002])

    class OneSocket:
        def __init__(self, *_: object) -> None:
            self.port = next(offered)

        def __enter__(self) -> OneSocket:
            return self

        def __exit__(self, *_: object) -> None:
            pass

        def bind(self, _: object) -> None:
            pass

        def getsockname(self) -> tuple[str, int]:
            return ("127.0.0.1", self.port)

    monkeypatch.setattr(processes, "_HANDED_OUT", set())
    monkeypatch.setattr(processes.socket, "socket", OneSocket)
    assert [processes.free_port(), processes.free_port()] == [40001, 40002]
