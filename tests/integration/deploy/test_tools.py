"""sockethub.devstack.tools fails with one clear line when it cannot build a tool."""

from __future__ import annotations

from pathlib import Path

import pytest

from sockethub.devstack import tools
from sockethub.devstack.errors import StackError


@pytest.fixture
def no_go(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SOCKETHUB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(tools, "_docker_compose_plugin", lambda: None)


@pytest.mark.usefixtures("no_go")
def test_without_go_the_error_says_what_to_install() -> None:
    for ensure in (tools.ensure_helm, tools.ensure_compose):
        with pytest.raises(StackError) as err:
            ensure()
        assert str(err.value) == (
            "go is missing: helm and compose are built from source with Go 1.26+"
        )
        assert "\n" not in str(err.value)


def test_a_failed_build_points_at_its_log(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SOCKETHUB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("GOPROXY", "off")  # offline: the version cannot be resolved
    with pytest.raises(StackError) as err:
        tools.ensure_helm("not-a-version")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("building helm not-a-version failed (exit ")
    log = tmp_path / "cache" / "tools" / "helm-not-a-version" / "build.log"
    assert f"see {log}" in message
    assert log.read_text().strip()
    assert not (log.parent / "helm").exists()


def test_a_cached_tool_is_not_rebuilt(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SOCKETHUB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # building would fail: no go
    cached = tmp_path / "cache" / "tools" / f"helm-{tools.HELM_VERSION}" / "helm"
    cached.parent.mkdir(parents=True)
    cached.write_text("#!/bin/sh\n")
    cached.chmod(0o755)
    assert tools.ensure_helm() == cached
