"""Sirens and activations as a caller's area lets them see them (control/areas/scope.py).

A siren post belongs to the area of its site; a post whose site the tree does not place
belongs to the root. ``None`` for a scope means the service itself (schedules, the sweep):
everything is in reach.

Two rules shape this module. A siren named by someone who may not see it is unknown to them,
with the very words an unknown siren gets, so a county cannot probe its neighbour's ids.
And a target list is never narrowed to what the caller may reach: a siren that silently does
not sound is a public-safety failure, so a group reaching beyond the caller's area refuses
the whole request and says which area would have to act.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from control.areas import Scope
from control.db import SirenActivation, SirenPost, SirenTarget
from control.sirens.errors import NotAllowed, NotFound

__all__ = [
    "HIDDEN",
    "Redactor",
    "must_cover",
    "must_see",
    "not_found",
    "reach_refusal",
    "sees",
    "sees_activation",
    "sees_post",
]

# What replaces a name of something outside the caller's area in a text they may read.
HIDDEN = "[outside your area]"


def sees(scope: Scope | None, site: str) -> bool:
    return scope is None or scope.has_site(site)


def sees_post(scope: Scope | None, post: SirenPost) -> bool:
    return sees(scope, post.site)


def sees_activation(scope: Scope | None, activation: SirenActivation) -> bool:
    """An activation is visible to whoever has at least one of its targets in scope."""
    return scope is None or any(scope.has_site(t.site) for t in activation.targets)


def not_found(activation_id: str) -> NotFound:
    # The same words records.get uses for an id that does not exist.
    return NotFound(f"no activation {activation_id!r}")


def must_see(scope: Scope | None, activation: SirenActivation) -> None:
    if not sees_activation(scope, activation):
        raise not_found(activation.id)


def reach_refusal(scope: Scope, sites: Sequence[str], what: str) -> NotAllowed:
    """403 for an action over ``sites`` that reach beyond ``scope``: how many lie outside,
    and the area whose people may act on all of them, named only as far as the caller's own
    area or above (``Scope.escalation_area``), never inside a neighbour's."""
    outside = sum(1 for site in sites if not scope.has_site(site))
    needed = scope.escalation_area(sites)
    who = f"a user of area {needed}" if needed else "a user of the root area"
    return NotAllowed(
        f"{outside} of the {len(sites)} sirens that {what} lie outside your area "
        f"({scope.area}): {who} must act on them"
    )


def must_cover(scope: Scope | None, sites: Sequence[str], what: str) -> None:
    if scope is not None and not scope.covers_sites(sites):
        raise reach_refusal(scope, sites, what)


_SLUG_EDGE = r"A-Za-z0-9_-"


class Redactor:
    """An activation as a caller sees it when some of its targets lie outside their area:
    those targets are left out, and their ids, names, sites, gateways and devices are
    blotted from every text shown (state, events, reason, comments), since gateways answer
    in words that name themselves and their sirens."""

    def __init__(self, scope: Scope | None, targets: Iterable[SirenTarget]) -> None:
        self.shown: list[SirenTarget] = []
        hidden: list[SirenTarget] = []
        for target in targets:
            (self.shown if sees(scope, target.site) else hidden).append(target)
        self.hidden = len(hidden)
        self.shown_ids = {t.siren for t in self.shown}
        self._hidden_gateways = {t.gateway for t in hidden} - {t.gateway for t in self.shown}
        words: set[str] = set()
        for t in hidden:
            words.update(w for w in (t.siren, t.name, t.site, t.gateway, t.device) if w)
        for t in self.shown:
            words.difference_update((t.siren, t.name, t.site, t.gateway, t.device))
        self._pattern = (
            re.compile(
                "|".join(
                    rf"(?<![{_SLUG_EDGE}]){re.escape(w)}(?![{_SLUG_EDGE}])"
                    # Longest first: a name must not be blotted half by a shorter id in it.
                    for w in sorted(words, key=len, reverse=True)
                )
            )
            if words
            else None
        )

    @property
    def partial(self) -> bool:
        return self.hidden > 0

    def text(self, value: str) -> str:
        if self._pattern is None:
            return value
        return self._pattern.sub(HIDDEN, value)

    def actor(self, actor: str) -> str | None:
        """An event's actor, or None when the event is a hidden gateway's own answer."""
        if actor.startswith("gateway:") and actor.removeprefix("gateway:") in self._hidden_gateways:
            return None
        return actor
