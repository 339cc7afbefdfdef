"""``sockethub --version`` and the start-up warning about unknown ``SOCKETHUB_*`` variables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from sockethub.cli import main
from sockethub.devstack.processes import free_port

REPO = Path(__file__).resolve().parents[3]


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCKETHUB_")}
    return {**env, **extra}


def _replay_against_a_closed_port(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sockethub.cli", "replay", "--kafka-bootstrap",
         f"127.0.0.1:{free_port()}"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_version_prints_the_distribution_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"sockethub {metadata.version('sockethub-kafka')}"


def test_unknown_variables_are_one_warning_and_no_secret_is_shown(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("file-content-never-shown\n")
    env = _clean_env(
        SOCKETHUB_LOG_FORMAT="json",
        SOCKETHUB_CORS_ORIGIN="https://app.example",
        SOCKETHUB_TOPIC_PREFIXX="value-never-shown",
        SOCKETHUB_SECRET_FILE=str(secret),
    )
    proc = _replay_against_a_closed_port(env)
    assert proc.returncode == 1
    warning, error = proc.stderr.strip().splitlines()
    record = json.loads(warning)
    assert record["level"] == "warning" and record["process"] == "replay"
    assert record["variables"] == [
        "SOCKETHUB_CORS_ORIGIN (did you mean SOCKETHUB_ALLOWED_ORIGINS?)",
        "SOCKETHUB_TOPIC_PREFIXX (did you mean SOCKETHUB_TOPIC_PREFIX?)",
    ]
    assert error.startswith("sockethub: cannot reach Kafka at 127.0.0.1:")
    assert "never-shown" not in proc.stderr + proc.stdout


def test_known_variables_raise_no_warning() -> None:
    env = _clean_env(
        SOCKETHUB_LOG_FORMAT="json",
        SOCKETHUB_IRC_TIMEOUT="5",
        SOCKETHUB_CONNECTION_GRACE="3",
        SOCKETHUB_CACHE_DIR="/tmp",
    )
    proc = _replay_against_a_closed_port(env)
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
