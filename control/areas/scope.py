"""What a user may see and act on: their area and everything under it.

A role says *what* a person may do; their area says *where*. A user with no area, or of the
root area, acts everywhere (the root also holds whatever the tree does not place). Anyone else
sees only their subtree: lists leave the rest out, and a thing outside it answers as if it did
not exist, so that a county learns nothing about its neighbour. Acting over several areas
needs an area that covers all of them: escalation goes up the tree, never sideways.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from control.areas.tree import AreaTree

__all__ = ["Scope"]


@dataclass(frozen=True)
class Scope:
    tree: AreaTree
    # The user's area; None for a user with no area.
    area: str | None

    @classmethod
    def everything(cls, tree: AreaTree | None = None) -> Scope:
        return cls(tree or AreaTree(), None)

    @property
    def unlimited(self) -> bool:
        """Whether nothing is out of reach: no area, an empty tree, or the root area."""
        return self.area is None or self.tree.empty or self.area == self.tree.root_code()

    @property
    def sites(self) -> frozenset[str] | None:
        """The sites in scope, or None for every site (also sites no tree names)."""
        if self.unlimited:
            return None
        assert self.area is not None
        return self.tree.sites_under(self.area)

    @property
    def gateways(self) -> frozenset[str] | None:
        if self.unlimited:
            return None
        assert self.area is not None
        return self.tree.gateways_under(self.area)

    def has_area(self, code: str) -> bool:
        if self.unlimited:
            return True
        assert self.area is not None
        return code in self.tree.areas and self.tree.covers(self.area, code)

    def has_site(self, site: str) -> bool:
        if self.unlimited:
            return True
        assert self.area is not None
        return site in self.tree.areas and self.tree.covers(self.area, site)

    def has_gateway(self, gateway: str) -> bool:
        if self.unlimited:
            return True
        site = self.tree.site_of_gateway(gateway)
        return site is not None and self.has_site(site)

    def covers_sites(self, sites: Iterable[str]) -> bool:
        return all(self.has_site(site) for site in sites)

    def outside(self, sites: Iterable[str]) -> list[str]:
        """The sites of ``sites`` out of scope, sorted (for counting, not for showing)."""
        return sorted({site for site in sites if not self.has_site(site)})

    def escalation_area(self, sites: Iterable[str]) -> str | None:
        """The area to name to the caller as the one that must act on ``sites``: the lowest
        area covering them *and the caller's own*. It is always the caller's area or one
        above it, so naming it tells nothing about a neighbour, even when none of ``sites``
        is the caller's (the lowest area over those alone would be inside the neighbour's
        part of the tree)."""
        wanted = [*sites, *([self.area] if self.area is not None else [])]
        return self.needed_area(wanted)

    def needed_area(self, sites: Iterable[str]) -> str | None:
        """The lowest area whose people may act on all of ``sites`` (a parent, never a
        sibling, so naming it to the caller leaks nothing they may not know)."""
        homes = {self.tree.home_of_site(site) for site in sites}
        homes.discard(None)
        return self.tree.lowest_common(h for h in homes if h is not None)
