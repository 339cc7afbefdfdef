from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from gateway.settings import GatewaySettings
from platform_runners.settings import RunnerSettings
from sockethub.devstack.errors import StackError
from sockethub.settings_cli import add_settings_flags, settings_from_args
from sockethub.settings_doc import tables

README = Path(__file__).resolve().parents[3] / "README.md"


def _parse(cls: type[GatewaySettings] | type[RunnerSettings], *argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_settings_flags(parser, cls)
    return parser.parse_args(argv)


def test_flag_wins_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOCKETHUB_PORT", "1111")
    monkeypatch.setenv("SOCKETHUB_REDIS_URL", "redis://127.0.0.1:7000/0")
    settings = settings_from_args(GatewaySettings, _parse(GatewaySettings, "--port", "2222"))
    assert settings.port == 2222
    assert settings.redis_url == "redis://127.0.0.1:7000/0"


def test_boolean_flags_both_ways() -> None:
    assert settings_from_args(RunnerSettings, _parse(RunnerSettings)).transactions is True
    off = settings_from_args(RunnerSettings, _parse(RunnerSettings, "--no-transactions"))
    assert off.transactions is False


def test_invalid_value_names_the_variable() -> None:
    with pytest.raises(StackError, match="SOCKETHUB_MAX_PAYLOAD"):
        settings_from_args(GatewaySettings, _parse(GatewaySettings, "--max-payload", "12"))


def test_readme_documents_every_setting() -> None:
    readme = README.read_text()
    assert tables() in readme, "README tables are stale: python -m sockethub.settings_doc"
    for cls in (GatewaySettings, RunnerSettings):
        for name in cls.model_fields:
            assert f"SOCKETHUB_{name.upper()}" in readme


def test_the_gateways_own_origin_is_always_allowed() -> None:
    settings = GatewaySettings(port=4444, allowed_origins="https://app.example")
    assert settings.origins() == [
        "https://app.example",
        "http://127.0.0.1:4444",
        "http://localhost:4444",
    ]
    assert GatewaySettings(allowed_origins="*").origins() == "*"
