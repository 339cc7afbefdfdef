from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from gateway.settings import GatewaySettings
from platform_runners.settings import RunnerSettings
from sockethub.devstack.errors import StackError
from sockethub.runtime.settings import variables
from sockethub.settings_cli import add_settings_flags, settings_from_args
from sockethub.settings_doc import COMMAND, DOC_PATH, render

REPO = Path(__file__).resolve().parents[3]


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


def test_nested_platform_flags_and_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOCKETHUB_IRC_TIMEOUT", "7")
    monkeypatch.setenv("SOCKETHUB_IRC_RECONNECT_WINDOW", "9")
    monkeypatch.setenv("SOCKETHUB_CONNECTION_GRACE", "3")
    args = _parse(
        RunnerSettings, "--irc-timeout", "11", "--no-xmpp-tls-verify", "--restore-wait", "5"
    )
    settings = settings_from_args(RunnerSettings, args)
    assert settings.irc.timeout == 11  # the flag wins
    assert settings.irc.reconnect_window == 9  # the variable is still read
    assert settings.xmpp.tls_verify is False
    assert settings.persistent.connection_grace == 3
    assert settings.persistent.restore_wait == 5


def test_nested_settings_are_read_without_the_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOCKETHUB_XMPP_CA_FILE", "/etc/ca.pem")
    monkeypatch.setenv("SOCKETHUB_IRC_TLS_VERIFY", "false")
    settings = RunnerSettings()
    assert settings.xmpp.ca_file == "/etc/ca.pem"
    assert settings.irc.tls_verify is False


def test_invalid_nested_value_names_its_own_variable() -> None:
    with pytest.raises(StackError, match="SOCKETHUB_IRC_TIMEOUT"):
        settings_from_args(RunnerSettings, _parse(RunnerSettings, "--irc-timeout", "-1"))


def test_flags_are_unique_per_command() -> None:
    for cls in (GatewaySettings, RunnerSettings):
        parser = argparse.ArgumentParser()
        add_settings_flags(parser, cls)  # argparse raises on a duplicate flag
        help_text = parser.format_help()
        for variable in variables(cls):
            if not variable.endswith("_FILE"):
                assert variable in help_text


def test_configuration_doc_is_generated_from_the_models() -> None:
    committed = DOC_PATH.read_text() if DOC_PATH.exists() else ""
    assert committed == render(), f"docs/configuration.md is stale: run {COMMAND}"


def test_configuration_doc_names_every_variable() -> None:
    doc = (REPO / "docs" / "configuration.md").read_text()
    for cls in (GatewaySettings, RunnerSettings):
        for variable in variables(cls):
            assert f"`{variable}`" in doc, variable


def test_the_gateways_own_origin_is_always_allowed() -> None:
    settings = GatewaySettings(port=4444, allowed_origins="https://app.example")
    assert settings.origins() == [
        "https://app.example",
        "http://127.0.0.1:4444",
        "http://localhost:4444",
    ]
    assert GatewaySettings(allowed_origins="*").origins() == "*"
