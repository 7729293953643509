"""Siren posts: list (with health), read, create, update, delete, export and import.

Reading needs ``sirens.read`` (viewer and up); changing the inventory ``sirens.manage``
(commander and up), because it decides which device sounds when an activation names a
siren. Every change is audited (the HTTP audit row carries the body; imports also get a
row naming every siren and group they wrote).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response, status
from pydantic import BaseModel, Field

from control.api.deps import BAD_JSON, FORBIDDEN, UNAUTHORIZED, Allow, StrictQuery
from control.api.siren_errors import CONFLICT, NOT_FOUND, http_error, siren_service
from control.audit import append_audit
from control.auth import Permission, Principal
from control.sirens import SirenError, transfer
from control.sirens import inventory as inv
from control.sirens.models import SirenCreate, SirenFields, SirenPublic
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


async def _one(request: Request, siren_id: str) -> SirenPublic:
    service = siren_service(request)
    try:
        post = await inv.get_siren(service.db, siren_id)
    except SirenError as exc:
        raise http_error(exc) from exc
    return (await service.with_health([post]))[0]


@router.get("", responses=NOT_FOUND)
async def list_sirens(
    _user: Reader,
    request: Request,
    district: SlugQuery = None,
    group: SlugQuery = None,
    flagged: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[SirenPublic]:
    """Sorted by id, with each siren's last test and whether it is flagged."""
    service = siren_service(request)
    try:
        posts = await inv.list_sirens(service.db, district=district)
        if group is not None:
            chosen = {p.id for p in await service.resolve(sirens=[], groups=[group])}
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
    _user: Reader, request: Request, format: Literal["csv", "yaml"] = "csv"
) -> Response:
    """CSV: the sirens; YAML: the sirens and the groups. Import takes either back."""
    db = siren_service(request).db
    posts = await inv.list_sirens(db)
    if format == "csv":
        body, media = transfer.export_csv(posts), "text/csv"
    else:
        body, media = (
            transfer.export_yaml(posts, await inv.list_groups(db, limit=100_000)),
            "application/yaml",
        )
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
async def import_sirens(body: SirenImport, user: Manager, request: Request) -> ImportResult:
    """Create or update every siren (and, from YAML, every group) of the file, all or none."""
    db = siren_service(request).db
    try:
        sirens, groups = transfer.parse(body.content, body.format)
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
async def get_siren(_user: Reader, request: Request, siren_id: SirenId) -> SirenPublic:
    return await _one(request, siren_id)


@router.post("", status_code=status.HTTP_201_CREATED, responses={**BAD_JSON, **CONFLICT})
async def create_siren(body: SirenCreate, _user: Manager, request: Request) -> SirenPublic:
    try:
        await inv.create_siren(siren_service(request).db, body)
    except SirenError as exc:
        raise http_error(exc) from exc
    return await _one(request, body.id)


@router.put("/{siren_id}", responses={**BAD_JSON, **NOT_FOUND, **CONFLICT})
async def update_siren(
    body: SirenFields, _user: Manager, request: Request, siren_id: SirenId
) -> SirenPublic:
    """Replace every field but the id (and the last test, which tests set)."""
    try:
        await inv.update_siren(siren_service(request).db, siren_id, body)
    except SirenError as exc:
        raise http_error(exc) from exc
    return await _one(request, siren_id)


@router.delete("/{siren_id}", responses=NOT_FOUND)
async def delete_siren(_user: Manager, request: Request, siren_id: SirenId) -> SirenDeleted:
    """Past activations keep their copy of it; groups that listed it drop it."""
    try:
        groups = await inv.delete_siren(siren_service(request).db, siren_id)
    except SirenError as exc:
        raise http_error(exc) from exc
    return SirenDeleted(id=siren_id, removed_from_groups=groups)
