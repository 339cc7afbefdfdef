"""Which sessions of a persistent platform lost their gateway without a ``session_closed``.

Every attached session is known with its reply route, the reply topic of the gateway that
holds it; each gateway keeps a liveness key per reply route in Redis
(:mod:`sockethub.runtime.liveness`). A runner reads the keys of the routes it holds every few
seconds, one ``MGET`` for all of them, and hands the answer to :class:`OrphanJudge`, which
decides without I/O (so that the decision is unit-tested on its own):

- a route whose key is missing on every check for at least ``confirm`` seconds has lost its
  gateway: its sessions are orphans. A killed gateway's key vanishes ``heartbeat_ttl``
  seconds after its last write; a gateway that stops cleanly deletes it (with recovery on,
  it parked its sessions and sent no ``session_closed``). ``confirm`` (two heartbeat
  intervals, plus the recovery window) adds the time a gateway needs to write it again
  after Redis lost its data, so a Redis restart releases nothing;
- a route whose key carries another incarnation than the one a session was first seen under
  was restarted under the same gateway id: the sessions of the previous life are orphans,
  those first seen under the new one are not;
- a failed read decides nothing and restarts the ``confirm`` clocks (fail safe: Redis being
  down must not release every connection).

An orphan is then detached like a ``session_closed`` would, so the ordinary connection grace
runs before the connection closes (the server sees a QUIT). A session that moved to another
gateway is attached under its new route, which is judged on its own.
"""

from __future__ import annotations

from collections.abc import Mapping

Pair = tuple[str, str]
"""(session id, reply route)."""


class OrphanJudge:
    """The decision, fed with what was held and read at each check."""

    def __init__(self, confirm: float) -> None:
        self.confirm = confirm
        self._missing_since: dict[str, float] = {}
        """Route -> when a check first found its key missing (in a row)."""
        self._seen_under: dict[Pair, str] = {}
        """The incarnation of the route's gateway when the pair was first seen alive."""

    def read_failed(self) -> None:
        self._missing_since.clear()

    def judge(self, held: set[Pair], beats: Mapping[str, str | None], now: float) -> set[Pair]:
        """The orphans among ``held``, given each route's incarnation (None: key missing;
        a route absent from ``beats`` was not read and is not judged)."""
        routes = {route for _, route in held}
        orphans: set[Pair] = set()
        for session_id, route in held:
            if route not in beats:
                continue
            incarnation = beats[route]
            if incarnation is None:
                since = self._missing_since.setdefault(route, now)
                if now - since >= self.confirm:
                    orphans.add((session_id, route))
                continue
            if self._seen_under.setdefault((session_id, route), incarnation) != incarnation:
                orphans.add((session_id, route))
        for route, incarnation in beats.items():
            if incarnation is not None:
                self._missing_since.pop(route, None)
        self._missing_since = {r: t for r, t in self._missing_since.items() if r in routes}
        self._seen_under = {
            p: i for p, i in self._seen_under.items() if p in held and p not in orphans
        }
        return orphans
