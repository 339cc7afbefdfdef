from __future__ import annotations

import base64
from pathlib import Path

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
