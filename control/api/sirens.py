"""Siren posts: list (with health), read, create, update, delete, export and import.

Reading needs ``sirens.read`` (viewer and up); changing the inventory ``sirens.manage``
(commander and up), because it decides which device sounds when an activation names a
siren. Every change is audited (the HTTP audit row carries the body; imports also get a
row naming every siren and group they wrote).

A post belongs to the area of its site (the root's when the tree does not place the site).
A caller sees and changes only the posts of their area: another area's post answers 404 in
the words of one that does not exist, and a post may be placed (created, imported, moved)
only on a site and a gateway of the caller's area (docs/sirens.md, "Areas and scope").
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response, status
from pydantic import BaseModel, Field

from control.api.deps import BAD_JSON, FORBIDDEN, UNAUTHORIZED, Allow, ScopeDep, StrictQuery
from control.api.siren_errors import CONFLICT, NOT_FOUND, http_error, siren_service
from control.areas import Scope
from control.audit import append_audit
from control.auth import Permission, Principal
from control.db import Database, SirenGroup, SirenPost
from control.sirens import Conflict, NotAllowed, NotFound, SirenError, UnknownTarget, transfer
from control.sirens import inventory as inv
from control.sirens.models import GroupIn, SirenCreate, SirenFields, SirenPublic
from shelterwatch.contract import SLUG_PATTERN

__all__ = ["ImportResult", "SirenDeleted", "SirenImport", "router"]

router = APIRouter(
    prefix="/api/v1/sirens",
    tags=["sirens"],
    dependencies=[StrictQuery],
    responses={401: UNAUTHORIZED, 403: FORBIDDEN},
)

Reader = Annotated[Principal, Allow(Permission.SIRENS_READ)]
Manager = Annotated[Principal, Allow(Permission.SIRENS_MANAGE)]
SirenId = Annotated[str, Path(pattern=SLUG_PATTERN, max_length=64)]
SlugQuery = Annotated[str | None, Query(pattern=SLUG_PATTERN, max_length=64)]


class SirenImport(BaseModel):
    format: Literal["csv", "yaml"]
    # The file's text: CSV with the export's header, or YAML with sirens: and groups:.
    content: Annotated[str, Field(max_length=10 * 1024 * 1024)]


class ImportResult(BaseModel):
    created: int
    updated: int
    sirens: list[str]
    groups: list[str]


class SirenDeleted(BaseModel):
    id: str
    # Groups that listed it as a member and no longer do.
    removed_from_groups: list[str]


async def _visible(request: Request, scope: Scope, siren_id: str) -> SirenPost:
    """The post, or NotFound in the very words of a missing one when it lies outside."""
    post = await inv.get_siren(siren_service(request).db, siren_id)
    if not scope.has_site(post.site):
        raise NotFound(f"no siren {siren_id!r}")
    return post


async def _one(request: Request, scope: Scope, siren_id: str) -> SirenPublic:
    try:
        post = await _visible(request, scope, siren_id)
    except SirenError as exc:
        raise http_error(exc) from exc
    return (await siren_service(request).with_health([post]))[0]


def _placeable(scope: Scope, body: SirenFields, what: str) -> None:
    """A post may be placed only where the caller acts: on a site of their area, driven by a
    gateway of their area (else a county could aim a post at its neighbour's gateway). The
    words name only what the caller sent."""
    if not scope.has_site(body.site):
        raise NotAllowed(f"{what}: site {body.site!r} is not in your area ({scope.area})")
    if not scope.has_gateway(body.gateway):
        raise NotAllowed(f"{what}: gateway {body.gateway!r} is not in your area ({scope.area})")


def _group_sites(group: SirenGroup | GroupIn, posts: list[SirenPost]) -> list[str]:
    members = set(group.members) if isinstance(group, GroupIn) else set(_names(group.members))
    districts = set(group.districts) if isinstance(group, GroupIn) else set(_names(group.districts))
    return [p.site for p in posts if p.id in members or p.district in districts]


def _names(stored: str) -> list[str]:
    loaded: list[str] = json.loads(stored)
    return loaded


async def _check_import(
    db: Database, scope: Scope, sirens: list[SirenCreate], groups: dict[str, GroupIn]
) -> None:
    """What a caller of a limited area may import: posts placed in their area, no id of a
    post outside it, and groups wholly inside it (before and after), so that a file cannot
    reach a neighbour's sirens nor rewrite a group that also holds them."""
    existing = {p.id: p for p in await inv.list_sirens(db)}
    for body in sirens:
        _placeable(scope, body, f"siren {body.id!r}")
        other = existing.get(body.id)
        if other is not None and not scope.has_site(other.site):
            # The words of create's conflict: the id is taken, nothing more.
            raise Conflict(f"siren {body.id!r}: the id is taken; nothing was imported")
    after = {**existing, **{b.id: _post_like(b) for b in sirens}}
    hidden_ids = {i for i, p in after.items() if not scope.has_site(p.site)}
    stored = {g.name: g for g in await inv.list_groups(db, limit=100_000)}
    for name, group in sorted(groups.items()):
        unknown = sorted(set(group.members) & hidden_ids)
        if unknown:
            raise UnknownTarget(sirens=unknown)
        for row_group in (stored.get(name), group):
            if row_group is None:
                continue
            sites = _group_sites(row_group, list(after.values()))
            if not scope.covers_sites(sites):
                raise NotAllowed(
                    f"group {name!r} reaches sirens outside your area ({scope.area}); "
                    "nothing was imported"
                )


def _post_like(body: SirenCreate) -> SirenPost:
    return SirenPost(id=body.id, site=body.site, district=body.district)


@router.get("", responses=NOT_FOUND)
async def list_sirens(
    _user: Reader,
    request: Request,
    scope: ScopeDep,
    district: SlugQuery = None,
    group: SlugQuery = None,
    flagged: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[SirenPublic]:
    """Sorted by id, with each siren's last test and whether it is flagged; only the sirens
    of the caller's area (``group``: its members there)."""
    service = siren_service(request)
    try:
        posts = [
            p
            for p in await inv.list_sirens(service.db, district=district)
            if scope.has_site(p.site)
        ]
        if group is not None:
            # Unscoped: a listing shows a group's members in reach, and refuses nothing.
            members = await service.resolve(sirens=[], groups=[group])
            if not any(scope.has_site(p.site) for p in members) and not scope.unlimited:
                raise UnknownTarget(groups=[group])
            chosen = {p.id for p in members}
            posts = [p for p in posts if p.id in chosen]
    except SirenError as exc:
        raise http_error(exc) from exc
    listed = await service.with_health(posts)
    if flagged is not None:
        listed = [s for s in listed if s.flagged == flagged]
    return listed[:limit]


@router.get(
    "/export",
    response_class=Response,
    responses={
        200: {"description": "The inventory", "content": {"text/csv": {}, "application/yaml": {}}}
    },
)
async def export_sirens(
    _user: Reader, request: Request, scope: ScopeDep, format: Literal["csv", "yaml"] = "csv"
) -> Response:
    """CSV: the sirens; YAML: the sirens and the groups. Import takes either back. Only the
    caller's area: its sirens, and the groups wholly inside it (a group cut down to its
    members in the area would, imported back, drop the others)."""
    db = siren_service(request).db
    every = await inv.list_sirens(db)
    posts = [p for p in every if scope.has_site(p.site)]
    if format == "csv":
        body, media = transfer.export_csv(posts), "text/csv"
    else:
        groups = [
            g
            for g in await inv.list_groups(db, limit=100_000)
            if scope.unlimited or ((sites := _group_sites(g, every)) and scope.covers_sites(sites))
        ]
        body, media = transfer.export_yaml(posts, groups), "application/yaml"
    return Response(
        body,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="sirens.{format}"'},
    )


@router.post(
    "/import",
    responses={
        **BAD_JSON,
        **NOT_FOUND,
        **CONFLICT,
        422: {"description": "A bad row: its row and column are named; nothing was imported"},
    },
)
async def import_sirens(
    body: SirenImport, user: Manager, request: Request, scope: ScopeDep
) -> ImportResult:
    """Create or update every siren (and, from YAML, every group) of the file, all or none.
    403 if a siren would stand outside the caller's area or a group reach beyond it."""
    db = siren_service(request).db
    try:
        sirens, groups = transfer.parse(body.content, body.format)
        if not scope.unlimited:
            await _check_import(db, scope, sirens, groups)
        created, updated = await inv.upsert(db, sirens, groups)
    except SirenError as exc:
        raise http_error(exc) from exc
    result = ImportResult(
        created=created,
        updated=updated,
        sirens=[s.id for s in sirens],
        groups=sorted(groups),
    )
    await append_audit(
        db,
        actor=user.username,
        action="sirens.import",
        target=body.format,
        params=result.model_dump(),
        result="imported",
    )
    return result


@router.get("/{siren_id}", responses=NOT_FOUND)
async def get_siren(
    _user: Reader, request: Request, scope: ScopeDep, siren_id: SirenId
) -> SirenPublic:
    return await _one(request, scope, siren_id)


@router.post("", status_code=status.HTTP_201_CREATED, responses={**BAD_JSON, **CONFLICT})
async def create_siren(
    body: SirenCreate, _user: Manager, request: Request, scope: ScopeDep
) -> SirenPublic:
    """403 unless the site and the gateway are in the caller's area."""
    try:
        _placeable(scope, body, f"siren {body.id!r}")
        await inv.create_siren(siren_service(request).db, body)
    except SirenError as exc:
        raise http_error(exc) from exc
    return await _one(request, scope, body.id)


@router.put("/{siren_id}", responses={**BAD_JSON, **NOT_FOUND, **CONFLICT})
async def update_siren(
    body: SirenFields, _user: Manager, request: Request, scope: ScopeDep, siren_id: SirenId
) -> SirenPublic:
    """Replace every field but the id (and the last test, which tests set). 404 for a post
    outside the caller's area; 403 for moving one out of it."""
    try:
        await _visible(request, scope, siren_id)
        _placeable(scope, body, f"siren {siren_id!r}")
        await inv.update_siren(siren_service(request).db, siren_id, body)
    except SirenError as exc:
        raise http_error(exc) from exc
    return await _one(request, scope, siren_id)


@router.delete("/{siren_id}", responses=NOT_FOUND)
async def delete_siren(
    _user: Manager, request: Request, scope: ScopeDep, siren_id: SirenId
) -> SirenDeleted:
    """Past activations keep their copy of it; groups that listed it drop it."""
    try:
        await _visible(request, scope, siren_id)
        groups = await inv.delete_siren(siren_service(request).db, siren_id)
    except SirenError as exc:
        raise http_error(exc) from exc
    return SirenDeleted(id=siren_id, removed_from_groups=groups)
