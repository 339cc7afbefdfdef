"""The dummy platform's handlers, without Kafka."""

from __future__ import annotations

import pytest

from platform_runners.dummy import DummyPlatform
from platform_runners.platform import Context, PlatformError
from platform_runners.settings import RunnerSettings
from schemas.envelopes import JSONDict, Request
from schemas.platform_registry import DUMMY_FAULT_VERBS, PlatformRegistry, canonical_context


class NoEmit:
    def emit(
        self,
        session_id: str,
        activity: JSONDict,
        *,
        verb: str | None = None,
        error: str | None = None,
    ) -> bool:
        return False


def context(verb: str, content: str = "hi") -> Context:
    activity = {
        "@context": canonical_context("dummy"),
        "type": verb,
        "actor": {"id": "me", "type": "person"},
        "object": {"type": "message", "content": content},
    }
    request = Request("s", "r", "dummy", verb, activity)
    return Context(request, platform="dummy", attempt=1, credentials=None, emitter=NoEmit())


def make_dummy(*, faults: bool) -> DummyPlatform:
    descriptor = PlatformRegistry(["dummy"], dummy_faults=faults).get("dummy")
    assert descriptor is not None
    return DummyPlatform(RunnerSettings(greeting="Hey", dummy_faults=faults), descriptor, NoEmit())


@pytest.fixture
def dummy() -> DummyPlatform:
    return make_dummy(faults=True)


@pytest.mark.parametrize("faults", [True, False])
def test_handlers_cover_every_verb_but_credentials(faults: bool) -> None:
    dummy = make_dummy(faults=faults)
    assert set(dummy.handlers()) == set(dummy.descriptor.verbs) - {"credentials"}
    assert not dummy.persistent


def test_fault_verbs_are_off_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """A deployment's anonymous clients must not be able to stall or crash a runner."""
    monkeypatch.delenv("SOCKETHUB_DUMMY_FAULTS", raising=False)
    settings = RunnerSettings()
    assert settings.dummy_faults is False
    descriptor = PlatformRegistry(["dummy"]).get("dummy")
    assert descriptor is not None
    assert not set(DUMMY_FAULT_VERBS) & set(descriptor.verbs)
    dummy = DummyPlatform(settings, descriptor, NoEmit())
    assert set(dummy.handlers()) == {"echo", "greet", "fail", "throw"}
    monkeypatch.setenv("SOCKETHUB_DUMMY_FAULTS", "true")
    assert set(DUMMY_FAULT_VERBS) <= set(
        DummyPlatform(RunnerSettings(), descriptor, NoEmit()).handlers()
    )


async def test_echo_and_greet(dummy: DummyPlatform) -> None:
    echo = await dummy.echo(context("echo"))
    assert echo["actor"] == {"id": "dummy", "type": "platform"}
    assert echo["target"] == {"id": "me", "type": "person"}
    greet = await dummy.greet(context("greet", "you"))
    assert greet["object"] == {"type": "message", "content": "Hey you"}


async def test_fail(dummy: DummyPlatform) -> None:
    with pytest.raises(PlatformError, match=r"^boom$"):
        await dummy.fail(context("fail", "boom"))


async def test_missing_credentials_text() -> None:
    with pytest.raises(PlatformError, match=r"^credentials not found for dummy:me$"):
        await context("echo").credentials()
