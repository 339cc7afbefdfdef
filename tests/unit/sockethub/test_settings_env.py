"""Secrets from files, unknown SOCKETHUB_* variables, and settings reaching the platforms."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from gateway.settings import GatewaySettings
from platform_runners.irc.platform import IrcPlatform
from platform_runners.persistent_state import MemoryStateStore
from platform_runners.settings import IrcSettings, PersistentSettings, RunnerSettings
from platform_runners.xmpp.platform import XmppPlatform
from schemas.platform_registry import PlatformDescriptor, PlatformRegistry
from sockethub.devstack.errors import StackError
from sockethub.runtime.settings import CommonSettings, SettingsError
from sockethub.settings_cli import add_settings_flags, settings_from_args, unknown_variable_report
from tests.fixtures.persistent import RecordingEmitter

FILE_CONTENT = "s3cret-from-file-do-not-print"


def _clean(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SOCKETHUB_"):
            monkeypatch.delenv(name)


def _secret_file(tmp_path: Path, text: str = FILE_CONTENT + "\n") -> Path:
    path = tmp_path / "secret"
    path.write_text(text)
    return path


def test_secret_read_from_file_without_trailing_newline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _clean(monkeypatch)
    monkeypatch.setenv("SOCKETHUB_SECRET_FILE", str(_secret_file(tmp_path)))
    monkeypatch.setenv("SOCKETHUB_KAFKA_SASL_PASSWORD_FILE", str(_secret_file(tmp_path)))
    settings = CommonSettings()
    assert settings.secret is not None
    assert settings.secret.get_secret_value() == FILE_CONTENT
    assert settings.kafka_sasl_password is not None
    assert settings.kafka_sasl_password.get_secret_value() == FILE_CONTENT


def test_inner_whitespace_of_a_secret_file_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _clean(monkeypatch)
    path = _secret_file(tmp_path, " a b \n")
    monkeypatch.setenv("SOCKETHUB_LOG_KEYS_FILE", str(path))
    keys = CommonSettings().log_keys
    assert keys is not None and keys.get_secret_value() == " a b "


def test_variable_and_file_together_is_an_error_naming_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _clean(monkeypatch)
    monkeypatch.setenv("SOCKETHUB_SECRET", "from-the-variable")
    monkeypatch.setenv("SOCKETHUB_SECRET_FILE", str(_secret_file(tmp_path)))
    with pytest.raises(SettingsError) as err:
        CommonSettings()
    assert "SOCKETHUB_SECRET and SOCKETHUB_SECRET_FILE" in str(err.value)
    assert "from-the-variable" not in str(err.value)
    assert FILE_CONTENT not in str(err.value)


def test_the_cli_turns_secret_file_problems_into_one_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _clean(monkeypatch)
    monkeypatch.setenv("SOCKETHUB_SECRET_FILE", str(tmp_path / "missing"))
    parser = argparse.ArgumentParser()
    add_settings_flags(parser, GatewaySettings)
    with pytest.raises(StackError, match=r"SOCKETHUB_SECRET_FILE: cannot read .*missing"):
        settings_from_args(GatewaySettings, parser.parse_args([]))


def test_a_flag_wins_over_a_secret_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _clean(monkeypatch)
    monkeypatch.setenv("SOCKETHUB_SECRET_FILE", str(_secret_file(tmp_path)))
    parser = argparse.ArgumentParser()
    add_settings_flags(parser, GatewaySettings)
    settings = settings_from_args(GatewaySettings, parser.parse_args(["--secret", "flag"]))
    assert settings.secret is not None and settings.secret.get_secret_value() == "flag"


def test_dev_passes_file_secrets_on_as_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sockethub.dev import _export

    _clean(monkeypatch)
    path = _secret_file(tmp_path)
    monkeypatch.setenv("SOCKETHUB_SECRET_FILE", str(path))
    monkeypatch.setenv("SOCKETHUB_IRC_TIMEOUT", "9")
    parser = argparse.ArgumentParser()
    add_settings_flags(parser, RunnerSettings)
    args = parser.parse_args(["--log-keys", "k:AAAAAAAAAAAAAAAAAAAAAA==", "--irc-ca-file", "/ca"])
    _export(settings_from_args(RunnerSettings, args))
    assert "SOCKETHUB_SECRET" not in os.environ  # the children read the file themselves
    assert os.environ["SOCKETHUB_SECRET_FILE"] == str(path)
    assert os.environ["SOCKETHUB_LOG_KEYS"] == "k:AAAAAAAAAAAAAAAAAAAAAA=="
    assert os.environ["SOCKETHUB_IRC_CA_FILE"] == "/ca"
    assert os.environ["SOCKETHUB_IRC_TIMEOUT"] == "9.0"
    child = RunnerSettings()  # what a child process reads
    assert child.secret is not None and child.secret.get_secret_value() == FILE_CONTENT
    assert child.irc.ca_file == "/ca"


@pytest.mark.parametrize(
    ("flags", "variable", "children"),
    [([], None, "true"), (["--no-dummy-faults"], None, "false"), ([], "false", "false")],
)
def test_dev_gives_its_children_the_dummy_faults_unless_told(
    monkeypatch: pytest.MonkeyPatch, flags: list[str], variable: str | None, children: str
) -> None:
    from sockethub.dev import _default_dummy_faults, _export

    _clean(monkeypatch)
    monkeypatch.delenv("SOCKETHUB_DUMMY_FAULTS", raising=False)
    if variable is not None:
        monkeypatch.setenv("SOCKETHUB_DUMMY_FAULTS", variable)
    parser = argparse.ArgumentParser()
    add_settings_flags(parser, GatewaySettings)
    settings = settings_from_args(GatewaySettings, parser.parse_args(flags))
    _export(settings)
    _default_dummy_faults(settings)
    assert os.environ["SOCKETHUB_DUMMY_FAULTS"] == children


def test_unknown_variables_are_named_with_close_matches() -> None:
    environ = {
        "SOCKETHUB_KAFKA_BOOTSTRAPP": "x",
        "SOCKETHUB_CORS_ORIGIN": "x",
        "SOCKETHUB_ZZZ": "x",
        "SOCKETHUB_KAFKA_BOOTSTRAP": "x",
        "SOCKETHUB_IRC_TIMEOUT": "x",
        "SOCKETHUB_CONNECTION_GRACE": "x",
        "SOCKETHUB_SECRET_FILE": "x",
        "SOCKETHUB_CACHE_DIR": "x",
        "OTHER_THING": "x",
    }
    assert unknown_variable_report(environ) == [
        "SOCKETHUB_CORS_ORIGIN (did you mean SOCKETHUB_ALLOWED_ORIGINS?)",
        "SOCKETHUB_KAFKA_BOOTSTRAPP (did you mean SOCKETHUB_KAFKA_BOOTSTRAP?)",
        "SOCKETHUB_ZZZ",
    ]


def _descriptor(platform: str) -> PlatformDescriptor:
    descriptor = PlatformRegistry([platform]).get(platform)
    assert descriptor is not None
    return descriptor


def test_platforms_take_their_settings_from_the_runner_settings() -> None:
    settings = RunnerSettings(
        irc=IrcSettings(timeout=7),
        persistent=PersistentSettings(connection_grace=2),
    )
    irc = IrcPlatform(settings, _descriptor("irc"), RecordingEmitter(), store=MemoryStateStore())
    assert irc.irc.timeout == 7
    assert irc.options.connection_grace == 2
    xmpp = XmppPlatform(settings, _descriptor("xmpp"), RecordingEmitter(), store=MemoryStateStore())
    assert xmpp.xmpp is settings.xmpp
