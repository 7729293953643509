"""Siren groups: named sets of sirens (members and/or districts). ``all`` is built in and
is not stored; it is listed first, with every siren."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, status

from control.api.deps import BAD_JSON, FORBIDDEN, UNAUTHORIZED, Allow, StrictQuery
from control.api.siren_errors import CONFLICT, NOT_FOUND, http_error, siren_service
from control.auth import Permission, Principal
from control.db import SirenGroup, SirenPost
from control.sirens import Conflict, SirenError
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


def _public(group: SirenGroup, posts: list[SirenPost]) -> GroupPublic:
    return GroupPublic(
        name=group.name,
        description=group.description,
        members=json.loads(group.members),
        districts=json.loads(group.districts),
        sirens=inv.group_sirens(group, posts),
        created=group.created_ms,
        updated=group.updated_ms,
    )


def _all(posts: list[SirenPost]) -> GroupPublic:
    ids = [p.id for p in posts]
    districts = sorted({p.district for p in posts if p.district})
    return GroupPublic(
        name=inv.ALL_GROUP,
        description="every siren (built in)",
        members=ids,
        districts=districts,
        sirens=ids,
        created=0,
        updated=0,
    )


@router.get("")
async def list_groups(
    _user: Reader, request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 1000
) -> list[GroupPublic]:
    db = siren_service(request).db
    posts = await inv.list_sirens(db)
    groups = [_public(g, posts) for g in await inv.list_groups(db, limit)]
    return [_all(posts), *groups][:limit]


@router.get("/{group}", responses=NOT_FOUND)
async def get_group(_user: Reader, request: Request, group: GroupName) -> GroupPublic:
    db = siren_service(request).db
    posts = await inv.list_sirens(db)
    if group == inv.ALL_GROUP:
        return _all(posts)
    try:
        return _public(await inv.get_group(db, group), posts)
    except SirenError as exc:
        raise http_error(exc) from exc


@router.post(
    "", status_code=status.HTTP_201_CREATED, responses={**BAD_JSON, **NOT_FOUND, **CONFLICT}
)
async def create_group(body: GroupCreate, _user: Manager, request: Request) -> GroupPublic:
    """404 if a member is not a siren; 409 if the name is taken (or is ``all``)."""
    db = siren_service(request).db
    try:
        row = await inv.create_group(
            db, body.name, GroupIn.model_validate(body.model_dump(exclude={"name"}))
        )
    except SirenError as exc:
        raise http_error(exc) from exc
    return _public(row, await inv.list_sirens(db))


@router.put("/{group}", responses={**BAD_JSON, **NOT_FOUND, **CONFLICT})
async def update_group(
    body: GroupIn, _user: Manager, request: Request, group: GroupName
) -> GroupPublic:
    db = siren_service(request).db
    try:
        if group == inv.ALL_GROUP:
            raise Conflict("'all' is built in and cannot be changed")
        row = await inv.update_group(db, group, body)
    except SirenError as exc:
        raise http_error(exc) from exc
    return _public(row, await inv.list_sirens(db))


@router.delete(
    "/{group}", status_code=status.HTTP_204_NO_CONTENT, responses={**NOT_FOUND, **CONFLICT}
)
async def delete_group(_user: Manager, request: Request, group: GroupName) -> None:
    try:
        if group == inv.ALL_GROUP:
            raise Conflict("'all' is built in and cannot be deleted")
        await inv.delete_group(siren_service(request).db, group)
    except SirenError as exc:
        raise http_error(exc) from exc
