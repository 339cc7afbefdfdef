"""Bad set-ups end with one clear line, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sockethub.devstack.errors import StackError
from sockethub.devstack.kafka import KafkaBroker, ensure_kafka_libs
from sockethub.devstack.processes import free_port


def test_corrupt_kafka_data_dir_is_reported(tmp_path: Path) -> None:
    data = tmp_path / "kafka" / "data"
    data.mkdir(parents=True)
    (data / "meta.properties").write_text("garbage without the cluster id\n")
    broker = KafkaBroker(tmp_path / "kafka", port=free_port(), controller_port=free_port())
    with pytest.raises(StackError, match=r"is corrupt .* move it away"):
        broker.start()
    assert not broker.running()


def test_unformatted_but_used_data_dir_is_reported(tmp_path: Path) -> None:
    data = tmp_path / "kafka" / "data"
    data.mkdir(parents=True)
    (data / "stray-file").write_text("x")
    broker = KafkaBroker(tmp_path / "kafka", port=free_port(), controller_port=free_port())
    with pytest.raises(StackError, match="not empty but was never formatted"):
        broker.start()


def test_missing_java_is_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path), "SOCKETHUB_CACHE_DIR": str(tmp_path / "cache")}
    env = {k: v for k, v in env.items() if k not in ("SOCKETHUB_KAFKA_BOOTSTRAP",)}
    proc = subprocess.run(
        [sys.executable, "-m", "sockethub.cli", "dev", "--state-dir", str(tmp_path / "s"),
         "--port", str(free_port()), "--internal-port", str(free_port()),
         "--kafka-port", str(free_port()),
         "--kafka-controller-port", str(free_port())],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("sockethub: java is missing: Kafka needs Java 17"), proc.stderr
    assert "Traceback" not in proc.stderr


def test_failed_maven_download_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOCKETHUB_CACHE_DIR", str(tmp_path))
    with pytest.raises(StackError, match=r"Maven could not download Kafka 0\.0\.0-missing") as err:
        ensure_kafka_libs("0.0.0-missing")
    assert "maven.log" in str(err.value)
    assert not (tmp_path / "kafka-0.0.0-missing" / "libs").exists()


def test_invalid_setting_is_reported_by_name(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "sockethub.cli", "gateway", "--port", "not-a-number"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("sockethub: invalid settings: SOCKETHUB_PORT:")
