"""Which code runs a platform: built-ins first, then the ``sockethub.platforms`` entry points.

An entry point's name is the platform id; it loads to a :class:`Platform`
subclass or a factory with the same constructor signature. Its descriptor
(verbs, schemas, persistence) comes from ``schemas.platform_registry``, which
reads third-party descriptors from the ``sockethub.platform_schemas`` group.
"""

from __future__ import annotations

import importlib
from importlib import metadata

from platform_runners.platform import PlatformFactory

ENTRY_POINT_GROUP = "sockethub.platforms"

BUILTINS: dict[str, str] = {
    "dummy": "platform_runners.dummy:DummyPlatform",
    "feeds": "platform_runners.feeds:FeedsPlatform",
    "metadata": "platform_runners.metadata:MetadataPlatform",
    "irc": "platform_runners.irc.platform:IrcPlatform",
    "xmpp": "platform_runners.xmpp.platform:XmppPlatform",
    "caldav": "platform_runners.caldav.platform:CaldavPlatform",
    "carddav": "platform_runners.carddav.platform:CarddavPlatform",
}
"""Built-in platforms as ``module:attribute``, imported only when that platform runs."""


class UnknownPlatform(LookupError):
    """No built-in and no entry point provides the platform."""


def _load_ref(ref: str) -> object:
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def known_platforms() -> list[str]:
    names = set(BUILTINS)
    names.update(ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP))
    return sorted(names)


def load_platform(platform_id: str) -> PlatformFactory:
    """The factory for ``platform_id``; an entry point replaces a built-in of the same name."""
    matches = [
        ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.name == platform_id
    ]
    if len(matches) > 1:
        raise UnknownPlatform(f"platform {platform_id} has more than one runner entry point")
    loaded = matches[0].load() if matches else None
    if loaded is None and platform_id in BUILTINS:
        loaded = _load_ref(BUILTINS[platform_id])
    if loaded is None:
        known = ", ".join(known_platforms()) or "none"
        raise UnknownPlatform(f"unknown platform {platform_id!r} (known: {known})")
    if not callable(loaded):
        raise UnknownPlatform(f"entry point for platform {platform_id} is not callable")
    factory: PlatformFactory = loaded
    return factory
