"""Siren groups: named sets of sirens (members and/or districts). ``all`` is built in and
is not stored; it is listed first, with every siren.

Groups are global names, but what a caller sees of one is cut to their area: only the groups
with at least one siren in it (a group with no siren at all only to those who see every
area), each showing its members and districts in the area and counting the rest; for a
caller of a limited area ``all`` means every siren of their area. Creating or changing a
group needs every siren it names or reaches, before and after, inside the caller's area
(docs/sirens.md, "Areas and scope").
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, status

from control.api.deps import BAD_JSON, FORBIDDEN, UNAUTHORIZED, Allow, ScopeDep, StrictQuery
from control.api.siren_errors import CONFLICT, NOT_FOUND, http_error, siren_service
from control.areas import Scope
from control.auth import Permission, Principal
from control.db import Database, SirenGroup, SirenPost
from control.sirens import (
    Conflict,
    InvalidInput,
    NotAllowed,
    NotFound,
    SirenError,
    UnknownTarget,
)
from control.sirens import inventory as inv
from control.sirens.models import GroupIn, GroupPublic, Slug

__all__ = ["GroupCreate", "router"]

router = APIRouter(
    prefix="/api/v1/siren-groups",
    tags=["sirens"],
    dependencies=[StrictQuery],
    responses={401: UNAUTHORIZED, 403: FORBIDDEN},
)

Reader = Annotated[Principal, Allow(Permission.SIRENS_READ)]
Manager = Annotated[Principal, Allow(Permission.SIRENS_MANAGE)]
GroupName = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", max_length=64)]


class GroupCreate(GroupIn):
    name: Slug


def _visible(scope: Scope, group: SirenGroup, posts: list[SirenPost]) -> bool:
    if scope.unlimited:
        return True
    ids = set(inv.group_sirens(group, posts))
    return any(p.id in ids and scope.has_site(p.site) for p in posts)


def _public(group: SirenGroup, posts: list[SirenPost], scope: Scope) -> GroupPublic:
    shown = [p for p in posts if scope.has_site(p.site)]
    ids = inv.group_sirens(group, posts)
    shown_ids = {p.id for p in shown}
    shown_districts = {p.district for p in shown}
    members: list[str] = json.loads(group.members)
    districts: list[str] = json.loads(group.districts)
    return GroupPublic(
        name=group.name,
        description=group.description,
        members=[m for m in members if scope.unlimited or m in shown_ids],
        districts=[d for d in districts if scope.unlimited or d in shown_districts],
        sirens=[i for i in ids if i in shown_ids],
        sirens_outside_scope=sum(1 for i in ids if i not in shown_ids),
        created=group.created_ms,
        updated=group.updated_ms,
    )


def _all(posts: list[SirenPost], scope: Scope) -> GroupPublic:
    ids = [p.id for p in posts if scope.has_site(p.site)]
    districts = sorted({p.district for p in posts if p.district and scope.has_site(p.site)})
    return GroupPublic(
        name=inv.ALL_GROUP,
        description="every siren (built in)"
        if scope.unlimited
        else f"every siren of your area, {scope.area} (built in)",
        members=ids,
        districts=districts,
        sirens=ids,
        created=0,
        updated=0,
    )


async def _writable(db: Database, scope: Scope, name: str, body: GroupIn | None) -> None:
    """A caller of a limited area may write a group only if it lies wholly in their area, as
    it is and as it would be: changing a group that also holds a neighbour's sirens would
    change what the neighbour sounds. A member outside the area is unknown to them."""
    if scope.unlimited:
        return
    posts = await inv.list_sirens(db)
    if body is not None:
        hidden = sorted(
            m
            for m in set(body.members)
            if any(p.id == m and not scope.has_site(p.site) for p in posts)
        )
        if hidden:
            raise UnknownTarget(sirens=hidden)
        reached = [p.site for p in posts if p.id in body.members or p.district in body.districts]
        for district in sorted(set(body.districts)):
            # A district with no siren of the caller's area is unknown to them, whether it
            # exists elsewhere or nowhere: the answer must not tell which.
            if not any(p.district == district and scope.has_site(p.site) for p in posts):
                raise InvalidInput(f"no siren of district {district!r} in your area")
        if not scope.covers_sites(reached):
            raise NotAllowed(_beyond(scope, name, reached, "would reach"))
    try:
        row = await inv.get_group(db, name)
    except NotFound:
        return
    if not _visible(scope, row, posts):
        if body is None:
            raise NotFound(f"no group {name!r}")
        return  # create will answer that the name is taken, as it does for anyone
    ids = set(inv.group_sirens(row, posts))
    sites = [p.site for p in posts if p.id in ids]
    if not scope.covers_sites(sites):
        raise NotAllowed(_beyond(scope, name, sites, "reaches"))


def _beyond(scope: Scope, name: str, sites: list[str], verb: str) -> str:
    outside = sum(1 for s in sites if not scope.has_site(s))
    needed = scope.escalation_area(sites)
    return (
        f"group {name!r} {verb} {outside} sirens outside your area ({scope.area}): "
        f"a user of area {needed or 'the root'} may change it"
    )


@router.get("")
async def list_groups(
    _user: Reader,
    request: Request,
    scope: ScopeDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
) -> list[GroupPublic]:
    db = siren_service(request).db
    posts = await inv.list_sirens(db)
    groups = [
        _public(g, posts, scope)
        for g in await inv.list_groups(db, 100_000 if not scope.unlimited else limit)
        if _visible(scope, g, posts)
    ]
    return [_all(posts, scope), *groups][:limit]


@router.get("/{group}", responses=NOT_FOUND)
async def get_group(
    _user: Reader, request: Request, scope: ScopeDep, group: GroupName
) -> GroupPublic:
    db = siren_service(request).db
    posts = await inv.list_sirens(db)
    if group == inv.ALL_GROUP:
        return _all(posts, scope)
    try:
        row = await inv.get_group(db, group)
        if not _visible(scope, row, posts):
            raise NotFound(f"no group {group!r}")
    except SirenError as exc:
        raise http_error(exc) from exc
    return _public(row, posts, scope)


@router.post(
    "", status_code=status.HTTP_201_CREATED, responses={**BAD_JSON, **NOT_FOUND, **CONFLICT}
)
async def create_group(
    body: GroupCreate, _user: Manager, request: Request, scope: ScopeDep
) -> GroupPublic:
    """404 if a member is not a siren (of the caller's area); 403 if its districts reach
    beyond the area; 409 if the name is taken (or is ``all``)."""
    db = siren_service(request).db
    fields = GroupIn.model_validate(body.model_dump(exclude={"name"}))
    try:
        await _writable(db, scope, body.name, fields)
        row = await inv.create_group(db, body.name, fields)
    except SirenError as exc:
        raise http_error(exc) from exc
    return _public(row, await inv.list_sirens(db), scope)


@router.put("/{group}", responses={**BAD_JSON, **NOT_FOUND, **CONFLICT})
async def update_group(
    body: GroupIn, _user: Manager, request: Request, scope: ScopeDep, group: GroupName
) -> GroupPublic:
    """404 for a group the caller does not see; 403 for one reaching beyond their area, as it
    is or as it would be."""
    db = siren_service(request).db
    try:
        if group == inv.ALL_GROUP:
            raise Conflict("'all' is built in and cannot be changed")
        await _writable(db, scope, group, None)
        await _writable(db, scope, group, body)
        row = await inv.update_group(db, group, body)
    except SirenError as exc:
        raise http_error(exc) from exc
    return _public(row, await inv.list_sirens(db), scope)


@router.delete(
    "/{group}", status_code=status.HTTP_204_NO_CONTENT, responses={**NOT_FOUND, **CONFLICT}
)
async def delete_group(_user: Manager, request: Request, scope: ScopeDep, group: GroupName) -> None:
    db = siren_service(request).db
    try:
        if group == inv.ALL_GROUP:
            raise Conflict("'all' is built in and cannot be deleted")
        await _writable(db, scope, group, None)
        await inv.delete_group(db, group)
    except SirenError as exc:
        raise http_error(exc) from exc
