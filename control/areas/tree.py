"""The command areas as a tree: province → city → county → site.

Civil air defence is commanded at three levels, and every site belongs to exactly one county
(or to a city or province directly, where no county level exists). The tree is data: it is
imported as a whole (YAML or CSV, control/areas/files.py) and replaced as a whole, so a reader
never sees half of an import. Sites are the leaves; their codes are the telemetry's site ids,
and each site lists the gateways that serve it, so a command to a gateway is placed too.

A site, siren post or gateway that the tree does not name belongs to the root: only people of
the root area (or with no area at all) see it. That fails closed for every other level.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from control.areas.errors import AreaError

__all__ = ["LEVEL_ORDER", "Area", "AreaTree", "Level"]

CODE_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
_CODE = re.compile(CODE_PATTERN)


class Level(StrEnum):
    PROVINCE = "province"
    CITY = "city"
    COUNTY = "county"
    SITE = "site"

    @property
    def depth(self) -> int:
        return LEVEL_ORDER.index(self)


LEVEL_ORDER: tuple[Level, ...] = (Level.PROVINCE, Level.CITY, Level.COUNTY, Level.SITE)


@dataclass(frozen=True)
class Area:
    code: str
    name: str
    level: Level
    parent: str | None
    # Only sites have gateways: the gateways that poll this site's devices.
    gateways: tuple[str, ...] = ()


@dataclass(frozen=True)
class AreaTree:
    """An immutable, checked tree. Build it with ``AreaTree.build``; an empty tree (no areas
    imported yet) has no root, and then every user sees everything."""

    areas: Mapping[str, Area] = field(default_factory=dict)
    revision: int = 0
    _children: Mapping[str, tuple[str, ...]] = field(default_factory=dict, repr=False)
    _gateway_site: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, areas: Iterable[Area], *, revision: int = 0) -> AreaTree:
        by_code: dict[str, Area] = {}
        for area in areas:
            if not _CODE.fullmatch(area.code):
                raise AreaError(
                    f"area code {area.code!r}: use 1 to 64 of a-z, 0-9, '_', '-', "
                    "starting with a letter or digit"
                )
            if area.code in by_code:
                raise AreaError(f"area {area.code!r} appears twice")
            if not area.name.strip():
                raise AreaError(f"area {area.code!r}: a name is needed")
            if area.gateways and area.level is not Level.SITE:
                raise AreaError(
                    f"area {area.code!r}: only sites have gateways; it is a {area.level}"
                )
            by_code[area.code] = area
        roots = [a for a in by_code.values() if a.parent is None]
        if by_code and len(roots) != 1:
            names = ", ".join(sorted(a.code for a in roots)) or "none"
            raise AreaError(f"the tree needs exactly one root area (no parent); found {names}")
        children: dict[str, list[str]] = {code: [] for code in by_code}
        gateway_site: dict[str, str] = {}
        for area in by_code.values():
            for gateway in area.gateways:
                if not _CODE.fullmatch(gateway):
                    raise AreaError(f"site {area.code!r}: gateway id {gateway!r} is not valid")
                other = gateway_site.setdefault(gateway, area.code)
                if other != area.code:
                    raise AreaError(
                        f"gateway {gateway!r} is listed under two sites: {other!r} and "
                        f"{area.code!r}"
                    )
            if area.parent is None:
                continue
            parent = by_code.get(area.parent)
            if parent is None:
                raise AreaError(f"area {area.code!r}: its parent {area.parent!r} does not exist")
            if parent.level is Level.SITE:
                raise AreaError(f"area {area.code!r}: its parent {parent.code!r} is a site")
            if area.level.depth <= parent.level.depth:
                raise AreaError(
                    f"area {area.code!r} ({area.level}) cannot sit under {parent.code!r} "
                    f"({parent.level}): levels go province → city → county → site"
                )
            children[parent.code].append(area.code)
        tree = cls(
            areas=by_code,
            revision=revision,
            _children={code: tuple(sorted(kids)) for code, kids in children.items()},
            _gateway_site=gateway_site,
        )
        if by_code:
            reached = sum(1 for _ in tree.walk(tree.root_code()))
            if reached != len(by_code):
                # With one root and parents that exist, only a cycle leaves areas unreached.
                raise AreaError("the areas' parents form a cycle: every area must reach the root")
        return tree

    # -- questions ------------------------------------------------------------------------

    @property
    def empty(self) -> bool:
        return not self.areas

    def root_code(self) -> str | None:
        for area in self.areas.values():
            if area.parent is None:
                return area.code
        return None

    def get(self, code: str) -> Area | None:
        return self.areas.get(code)

    def children(self, code: str) -> tuple[str, ...]:
        return tuple(self._children.get(code, ()))

    def walk(self, code: str | None) -> Iterator[Area]:
        """``code`` and everything under it, depth first, parents before children."""
        if code is None or code not in self.areas:
            return
        stack = [code]
        while stack:
            current = stack.pop()
            yield self.areas[current]
            stack.extend(reversed(self._children.get(current, ())))

    def ancestors(self, code: str) -> list[str]:
        """From ``code``'s parent up to the root."""
        chain: list[str] = []
        area = self.areas.get(code)
        while area is not None and area.parent is not None:
            chain.append(area.parent)
            area = self.areas.get(area.parent)
        return chain

    def covers(self, ancestor: str, code: str) -> bool:
        """Whether ``code`` is ``ancestor`` or lies under it."""
        return code == ancestor or ancestor in self.ancestors(code)

    def site_of_gateway(self, gateway: str) -> str | None:
        return self._gateway_site.get(gateway)

    def home_of_site(self, site: str) -> str | None:
        """The area a site is placed in: the site itself when the tree names it, else the
        root (an unplaced site belongs to the root), or None for an empty tree."""
        return site if site in self.areas else self.root_code()

    def sites_under(self, code: str) -> frozenset[str]:
        return frozenset(a.code for a in self.walk(code) if a.level is Level.SITE)

    def gateways_under(self, code: str) -> frozenset[str]:
        return frozenset(g for a in self.walk(code) for g in a.gateways)

    def lowest_common(self, codes: Iterable[str]) -> str | None:
        """The deepest area that covers every one of ``codes`` (the one who must approve an
        action over all of them)."""
        common: list[str] | None = None
        for code in codes:
            chain = [code, *self.ancestors(code)][::-1]
            if common is None:
                common = chain
                continue
            prefix = 0
            while prefix < min(len(common), len(chain)) and common[prefix] == chain[prefix]:
                prefix += 1
            common = common[:prefix]
        return common[-1] if common else None
