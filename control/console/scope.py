"""The caller's command area on console pages: what they may see (control/areas/scope.py).

Every page that shows something placed in an area takes ``CallerScope`` and filters with it,
as the JSON API does with its ``ScopeDep``: lists leave out what lies outside, and a thing
outside answers 404 exactly like one that does not exist. The scope is kept on the request,
so the page frame (the menu, the user's area in the header) and the error pages show the same
area as the page itself without reading the tree twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from control.api.deps import CurrentUser
from control.areas import AreaStore, Level, Scope
from control.auth import Principal

__all__ = [
    "AreaLink",
    "CallerScope",
    "area_choices",
    "area_store",
    "known_scope",
    "scope_of",
    "top_of",
    "trail",
]

_STATE_KEY = "console_scope"


def area_store(request: Request) -> AreaStore:
    """The control app's area store. Without one (the console mounted alone) the tree is read
    from the database, so a missing store never means "no areas, everyone sees everything"."""
    areas: AreaStore | None = getattr(request.state, "areas", None)
    return areas if areas is not None else AreaStore(request.state.db)


async def scope_of(request: Request, user: Principal) -> Scope:
    """The scope of ``user`` on this request, read once per request."""
    cached: Scope | None = getattr(request.state, _STATE_KEY, None)
    if cached is not None:
        return cached
    scope = Scope(await area_store(request).current(), user.area)
    setattr(request.state, _STATE_KEY, scope)
    return scope


async def _caller_scope(request: Request, user: CurrentUser) -> Scope:
    return await scope_of(request, user)


CallerScope = Annotated[Scope, Depends(_caller_scope)]


def known_scope(request: Request) -> Scope | None:
    """The scope a page already read, for the frame it is rendered in (None: none read)."""
    scope: Scope | None = getattr(request.state, _STATE_KEY, None)
    return scope


@dataclass(frozen=True)
class AreaLink:
    code: str
    name: str
    level: str


def _link(scope: Scope, code: str) -> AreaLink:
    area = scope.tree.areas[code]
    return AreaLink(area.code, area.name, area.level.value)


def top_of(scope: Scope) -> str | None:
    """Where the caller's part of the tree starts: their own area, or the root for a user
    who acts everywhere (None for an empty tree)."""
    if scope.tree.empty:
        return None
    if scope.unlimited:
        return scope.tree.root_code()
    # An area the tree no longer names sees nothing, and so starts nowhere.
    return scope.area if scope.area in scope.tree.areas else None


def trail(scope: Scope, code: str) -> list[AreaLink]:
    """From the caller's own area down to ``code`` (which the caller must see): the
    breadcrumb. It starts at their area, never above, so it names no area they do not
    command."""
    top = top_of(scope)
    if top is None or code not in scope.tree.areas:
        return []
    chain = [code, *scope.tree.ancestors(code)]
    if top not in chain:
        return []
    return [_link(scope, c) for c in reversed(chain[: chain.index(top) + 1])]


def area_choices(scope: Scope) -> list[AreaLink]:
    """The areas above site level the caller may pick: their own and every one under it,
    parents before children."""
    top = top_of(scope)
    if top is None:
        return []
    return [
        AreaLink(a.code, a.name, a.level.value)
        for a in scope.tree.walk(top)
        if a.level is not Level.SITE
    ]
