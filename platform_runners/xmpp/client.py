"""One XMPP connection over slixmpp: log in, one async method per verb, incoming stanzas out.

Independent of the connection pool: the owner passes ``on_stanza`` (every
incoming message, presence and error, as its XML element) and ``on_lost``
(the server went away after a successful login). :meth:`XmppClient.open` may
be called again after a loss; it builds a fresh slixmpp stream each time.
Errors are :class:`XmppError` with client-facing texts that never contain
the password.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import uuid
from collections.abc import Callable
from typing import Any
from xml.etree.ElementTree import Element

import slixmpp
import structlog
from slixmpp.exceptions import IqError, IqTimeout, PresenceError

from platform_runners.address_guard import GuardError
from platform_runners.xmpp.config import XmppConfig

log = structlog.get_logger("platform_runners.xmpp.client")

# slixmpp logs every stanza sent at DEBUG, SASL exchanges (PLAIN carries the password) too.
logging.getLogger("slixmpp").setLevel(max(logging.INFO, logging.getLogger("slixmpp").level))

PLUGINS = ("xep_0030", "xep_0045", "xep_0128", "xep_0199", "xep_0203", "xep_0308")
PRESENCE_SHOWS = frozenset({"away", "chat", "dnd", "xa"})
MUC_USER = "{http://jabber.org/protocol/muc#user}x"


class XmppError(Exception):
    """A failure with a client-facing text."""


def condition_text(condition: str, jid: str, text: str = "") -> str:
    """A readable text for an XMPP error condition about ``jid`` (and the server's text)."""
    if text:
        return f"{condition_text(condition, jid)}: {text}"
    if condition in ("item-not-found", "remote-server-not-found", "service-unavailable"):
        return f"room {jid} not found ({condition})"
    if condition == "conflict":
        return f"nickname already in use in {jid}"
    if condition in ("not-authorized", "forbidden", "registration-required"):
        return f"not allowed in {jid} ({condition})"
    return f"{condition} from {jid}"


class XmppClient:
    """A logged-in XMPP session (after :meth:`open`)."""

    def __init__(
        self,
        config: XmppConfig,
        *,
        on_stanza: Callable[[Element], None],
        on_lost: Callable[[str], None],
    ) -> None:
        self.config = config
        self._on_stanza = on_stanza
        self._on_lost = on_lost
        self._xmpp: Any = None
        self._online = False
        self._closing = False
        self.rooms: dict[str, str] = {}
        """Joined rooms: bare room JID -> our nick there."""
        self.joining: set[str] = set()
        """Rooms whose join is under way (their occupants' presence is already arriving)."""

    @property
    def online(self) -> bool:
        return self._online and self._xmpp is not None

    @property
    def jid(self) -> str:
        """The full bound JID (``user@domain/resource``)."""
        if self._xmpp is None:
            return f"{self.config.jid}/{self.config.resource}"
        return str(self._xmpp.boundjid.full)

    # -- connection -----------------------------------------------------------------------------

    def _stream(self) -> Any:
        cfg = self.config
        xmpp = slixmpp.ClientXMPP(f"{cfg.jid}/{cfg.resource}", cfg.password)
        for plugin in PLUGINS:
            xmpp.register_plugin(plugin)
        xmpp.enable_direct_tls = cfg.direct_tls
        xmpp.enable_starttls = not cfg.direct_tls
        xmpp.enable_plaintext = False
        if cfg.allow_plaintext:
            # Only for servers the deployment listed: SASL may then run without TLS.
            mechanisms = xmpp.plugin["feature_mechanisms"]
            mechanisms.unencrypted_plain = True
            mechanisms.unencrypted_scram = True
        if not cfg.tls_verify:
            xmpp.ssl_context.check_hostname = False
            xmpp.ssl_context.verify_mode = ssl.CERT_NONE
        if cfg.ca_file:
            xmpp.ssl_context.load_verify_locations(cfg.ca_file)
        # Subscription requests go to the client (request-friend), never answered for it.
        xmpp.roster.auto_authorize = None  # type: ignore[assignment]  # None: ask the app
        xmpp.roster.auto_subscribe = False
        xmpp.whitespace_keepalive = True
        return xmpp

    async def open(self) -> None:
        """Connect, authenticate, bind, fetch the roster and announce presence."""
        if self.online:
            return
        self._closing = False
        cfg = self.config
        try:
            # Before anything is dialled: a refused address reads the same, open port or not.
            addresses = await cfg.guard.vet(cfg.host, cfg.port)
        except GuardError as exc:
            raise XmppError(str(exc)) from None
        xmpp = self._stream()
        outcome: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()

        def settle(error: str | None) -> None:
            if not outcome.done():
                outcome.set_result(error)

        no_mechanism: list[bool] = []

        def auth_failed(*_: object) -> None:
            # Read now: the stream's features are gone once it closes.
            encrypted = cfg.direct_tls or "starttls" in xmpp.features

            # "no_auth" follows at once when no mechanism was even tried.
            def decide() -> None:
                if no_mechanism and not encrypted and not cfg.allow_plaintext:
                    settle(
                        f"{cfg.address} offers no TLS: refusing to send the password unencrypted"
                    )
                elif no_mechanism:
                    settle(f"no usable authentication mechanism offered by {cfg.address}")
                else:
                    settle(f"authentication failed for {cfg.jid}: wrong address or password")

            asyncio.get_running_loop().call_soon(decide)

        xmpp.add_event_handler("session_start", lambda _: settle(None))
        xmpp.add_event_handler("no_auth", lambda *_: no_mechanism.append(True))
        xmpp.add_event_handler("failed_all_auth", auth_failed)
        xmpp.add_event_handler(
            "connection_failed",
            lambda exc: settle(f"could not connect to {cfg.address}: {_reason(exc)}"),
        )
        xmpp.add_event_handler(
            "disconnected", lambda *_: settle(f"connection to {cfg.address} closed during login")
        )
        xmpp.add_event_handler(
            "stream_error", lambda err: settle(f"stream error from {cfg.address}: {_cond(err)}")
        )
        # Pinned to the first vetted address; TLS still checks the JID's domain, as before.
        xmpp.connect(addresses[0], cfg.port)
        try:
            async with asyncio.timeout(cfg.timeout):
                error = await outcome
        except TimeoutError:
            error = f"timed out connecting to {cfg.address}"
        if error is not None:
            self._abort(xmpp)
            raise XmppError(error)
        self._xmpp = xmpp
        self._online = True
        self._wire(xmpp)
        try:
            await xmpp.get_roster(timeout=cfg.timeout)
            xmpp.send_presence()
            # A round trip: the server has our initial presence before we report success,
            # so messages sent to our bare JID from now on reach this resource.
            await xmpp.plugin["xep_0199"].ping(jid=cfg.domain, timeout=cfg.timeout)
        except (IqError, IqTimeout) as exc:
            log.warning("xmpp.login.roundtrip_failed", jid=cfg.jid, error=type(exc).__name__)
        log.info("xmpp.online", jid=self.jid, server=cfg.address)

    def _wire(self, xmpp: Any) -> None:
        deliver = self._deliver

        def roster_presence(stanza: Any) -> None:
            # slixmpp stops raising "presence" for a room after its first presence; all room
            # presence comes as "groupchat_presence" instead, so take it from there only.
            if stanza.xml.find(MUC_USER) is None:
                deliver(stanza)

        xmpp.add_event_handler("message", deliver)
        xmpp.add_event_handler("message_error", deliver)
        xmpp.add_event_handler("presence", roster_presence)
        xmpp.add_event_handler("groupchat_presence", deliver)
        xmpp.add_event_handler("disconnected", lambda reason=None: self._lost(xmpp, reason))

    def _deliver(self, stanza: Any) -> None:
        try:
            self._on_stanza(stanza.xml)
        except Exception as exc:  # one bad stanza must not end the stream
            log.error("xmpp.stanza.failed", error=repr(exc))

    def _lost(self, xmpp: Any, reason: object) -> None:
        if xmpp is not self._xmpp or self._closing:
            return
        self._online = False
        self._xmpp = None
        self.rooms.clear()
        self._on_lost(str(reason) if reason else "connection closed")

    @staticmethod
    def _abort(xmpp: Any) -> None:
        with contextlib.suppress(Exception):
            xmpp.cancel_connection_attempt()
        with contextlib.suppress(Exception):
            xmpp.abort()

    async def close(self) -> None:
        """Say goodbye (unavailable presence, end of stream) and close the socket."""
        self._closing = True
        xmpp, self._xmpp = self._xmpp, None
        self._online = False
        self.rooms.clear()
        if xmpp is None:
            return
        try:
            xmpp.send_presence(ptype="unavailable")
            async with asyncio.timeout(5):
                await xmpp.disconnect(wait=2.0)
        except Exception:
            self._abort(xmpp)

    def _stream_or_fail(self) -> Any:
        if not self.online:
            raise XmppError(f"not connected to {self.config.address}")
        return self._xmpp

    # -- rooms ----------------------------------------------------------------------------------

    async def join(self, room: str, nick: str) -> None:
        """Join a MUC room; returns once the room confirmed (our own presence came back)."""
        xmpp = self._stream_or_fail()
        muc = xmpp.plugin["xep_0045"]
        # A bounce that does not look like a MUC answer (an unknown server, say) never reaches
        # the MUC plugin: watch for any presence error from the room as well.
        bounced: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        def on_error(pres: Any) -> None:
            if str(pres["from"].bare) == room and not bounced.done():
                error = pres["error"]
                bounced.set_result(condition_text(str(error["condition"]), room, error["text"]))

        ok = False
        self.joining.add(room)
        xmpp.add_event_handler("presence_error", on_error)
        joined = asyncio.ensure_future(
            muc.join_muc_wait(slixmpp.JID(room), nick, timeout=self.config.timeout)
        )
        try:
            await asyncio.wait({joined, bounced}, return_when=asyncio.FIRST_COMPLETED)
            if not joined.done():
                raise XmppError(f"cannot join {room}: {bounced.result()}")
            joined.result()
            ok = True
        except PresenceError as exc:
            text = condition_text(exc.condition, room, exc.text)
            raise XmppError(f"cannot join {room}: {text}") from None
        except TimeoutError:
            raise XmppError(f"cannot join {room}: no answer from the room") from None
        finally:
            if not ok:
                self._forget_room(muc, room)
            joined.cancel()
            bounced.cancel()
            xmpp.del_event_handler("presence_error", on_error)
            self.joining.discard(room)
        self.rooms[room] = str(muc.our_nicks[None].get(slixmpp.JID(room), nick))

    @staticmethod
    def _forget_room(muc: Any, room: str) -> None:
        with contextlib.suppress(Exception):
            muc.rooms[None].pop(slixmpp.JID(room), None)
            muc.our_nicks[None].pop(slixmpp.JID(room), None)

    async def leave(self, room: str, nick: str) -> None:
        xmpp = self._stream_or_fail()
        nick = self.rooms.pop(room, nick)
        xmpp.send_presence(pto=f"{room}/{nick}", ptype="unavailable")
        self._forget_room(xmpp.plugin["xep_0045"], room)

    async def occupants(self, room: str) -> list[str]:
        """Nicks in the room: tracked from presence when joined, else asked with disco#items."""
        xmpp = self._stream_or_fail()
        if room in self.rooms:
            return sorted(str(n) for n in xmpp.plugin["xep_0045"].get_roster(slixmpp.JID(room)))
        iq = await self._iq(room, xmpp.plugin["xep_0030"].get_items(jid=room, local=False))
        return sorted(str(name or jid.resource) for jid, _node, name in iq["disco_items"]["items"])

    async def room_info(self, room: str) -> Element:
        """The disco#info answer of a room (its XML), for :func:`events.room_info_object`."""
        xmpp = self._stream_or_fail()
        disco = xmpp.plugin["xep_0030"]
        iq = await self._iq(room, disco.get_info(jid=room, local=False, cached=False))
        xml: Element = iq.xml
        return xml

    async def _iq(self, jid: str, request: Any) -> Any:
        try:
            async with asyncio.timeout(self.config.timeout):
                return await request
        except IqError as exc:
            raise XmppError(condition_text(str(exc.condition), jid)) from None
        except (IqTimeout, TimeoutError):
            raise XmppError(f"no answer from {jid}") from None

    # -- messages and presence ------------------------------------------------------------------

    def send(
        self,
        to: str,
        body: str,
        *,
        groupchat: bool,
        message_id: str | None = None,
        replaces: str | None = None,
    ) -> str:
        """Send a chat or groupchat message (a XEP-0308 correction when ``replaces``); its id."""
        xmpp = self._stream_or_fail()
        msg = xmpp.make_message(mto=to, mbody=body, mtype="groupchat" if groupchat else "chat")
        msg["id"] = message_id or uuid.uuid4().hex
        if replaces:
            msg["replace"]["id"] = replaces
        msg.send()
        return str(msg["id"])

    def presence(self, presence: str, status: str | None = None) -> None:
        """Broadcast our presence: ``online``, ``offline`` or a ``show`` value."""
        xmpp = self._stream_or_fail()
        if presence == "offline":
            xmpp.send_presence(ptype="unavailable", pstatus=status)
            return
        show = presence if presence in PRESENCE_SHOWS else None
        xmpp.send_presence(pshow=show, pstatus=status)
        for room, nick in self.rooms.items():  # rooms see the same presence
            xmpp.send_presence(pto=f"{room}/{nick}", pshow=show, pstatus=status)

    def subscription(self, to: str, *kinds: str) -> None:
        """Send subscription presences (``subscribe``, ``subscribed``, ``unsubscribe``...)."""
        xmpp = self._stream_or_fail()
        for kind in kinds:
            xmpp.send_presence(pto=to, ptype=kind)


def _reason(exc: object) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _cond(err: Any) -> str:
    try:
        return str(err["condition"]) or "unknown"
    except Exception:
        return "unknown"
