"""Command areas: read the tree (as far as the caller may see), import it, export it.

A caller sees their own area, everything under it, and the chain of areas above it (so a
county knows its city and province), never a sibling. Importing replaces the whole tree and
is for admins who act everywhere: a county admin must not redraw the province.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Response, status
from pydantic import BaseModel, Field

from control.api.deps import (
    BAD_JSON,
    FORBIDDEN,
    UNAUTHORIZED,
    Allow,
    AreasDep,
    DatabaseDep,
    ErrorDetail,
    ScopeDep,
    StoreDep,
    StrictQuery,
    invalid_body,
)
from control.areas import (
    CODE_PATTERN,
    Area,
    AreaError,
    AreaInUse,
    AreaTree,
    Level,
    Scope,
    dump_csv,
    dump_yaml,
    parse_areas,
)
from control.areas.rollup import area_counts
from control.auth import Permission, Principal

__all__ = ["AreaPublic", "router"]

router = APIRouter(
    prefix="/api/v1/areas",
    tags=["areas"],
    dependencies=[StrictQuery],
    responses={401: UNAUTHORIZED, 403: FORBIDDEN},
)

Reader = Annotated[Principal, Allow(Permission.SITES_READ)]
Admin = Annotated[Principal, Allow(Permission.USERS_MANAGE)]
Code = Annotated[str, Path(pattern=CODE_PATTERN, max_length=64)]


class AreaPublic(BaseModel):
    code: str
    name: str
    level: Level
    parent: str | None
    gateways: list[str]
    children: list[str]

    @classmethod
    def of(cls, area: Area, tree: AreaTree, scope: Scope) -> AreaPublic:
        # Above the caller's own area, children would name siblings: show only the path.
        kids = [c for c in tree.children(area.code) if scope.has_area(c)]
        return cls(
            code=area.code,
            name=area.name,
            level=area.level,
            parent=area.parent,
            gateways=list(area.gateways),
            children=kids,
        )


class AreaView(BaseModel):
    revision: int
    # The caller's own area; None: every area.
    area: str | None
    # From the root down to the caller's area's parent: names only, for context.
    above: list[AreaPublic]
    # The caller's area and everything under it, parents before children.
    areas: list[AreaPublic]


class AreaImport(BaseModel):
    format: Literal["yaml", "csv"]
    content: Annotated[str, Field(max_length=20 * 1024 * 1024)]


class AreaCountsPublic(BaseModel):
    code: str
    name: str
    level: Level
    sites: int
    alerts_open: dict[str, int]
    activations_under_way: int
    activations_waiting_approval: int
    conversions_under_way: int
    conversions_waiting_approval: int
    readiness_mean: float | None
    readiness: dict[str, int]


class AreaSummary(BaseModel):
    area: AreaCountsPublic
    # One line per child area, for the parent's view; a site's children are none.
    children: list[AreaCountsPublic]


class ImportResult(BaseModel):
    revision: int
    counts: dict[str, int]


def _visible_root(scope: Scope, tree: AreaTree) -> str | None:
    return tree.root_code() if scope.unlimited else scope.area


@router.get("")
async def read_areas(_user: Reader, scope: ScopeDep) -> AreaView:
    tree = scope.tree
    top = _visible_root(scope, tree)
    above = [tree.areas[c] for c in reversed(tree.ancestors(top))] if top else []
    return AreaView(
        revision=tree.revision,
        area=scope.area,
        above=[
            AreaPublic(
                code=a.code,
                name=a.name,
                level=a.level,
                parent=a.parent,
                gateways=[],
                children=[],
            )
            for a in above
        ],
        areas=[AreaPublic.of(a, tree, scope) for a in tree.walk(top)],
    )


@router.get(
    "/export",
    response_class=Response,
    responses={200: {"content": {"application/yaml": {}, "text/csv": {}}}},
)
async def export_areas(
    _user: Reader,
    scope: ScopeDep,
    format: Annotated[Literal["yaml", "csv"], Query()] = "yaml",
) -> Response:
    """The caller's part of the tree as a file that imports again (an admin who acts
    everywhere gets the whole tree)."""
    tree = scope.tree
    top = _visible_root(scope, tree)
    part = AreaTree.build(
        (
            Area(a.code, a.name, a.level, None if a.code == top else a.parent, a.gateways)
            for a in tree.walk(top)
        ),
        revision=tree.revision,
    )
    if format == "csv":
        return Response(dump_csv(part), media_type="text/csv; charset=utf-8")
    return Response(dump_yaml(part), media_type="application/yaml; charset=utf-8")


@router.put(
    "",
    responses=BAD_JSON
    | {
        409: {"description": "Users still belong to areas the tree drops", "model": ErrorDetail},
    },
)
async def import_areas(
    body: AreaImport, admin: Admin, scope: ScopeDep, areas: AreasDep
) -> ImportResult:
    """Replace the whole tree with the file's (all or nothing, as a new revision)."""
    if not scope.unlimited:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "replacing the area tree needs an admin who acts in every area; "
            "ask an admin of the root area",
        )
    try:
        tree = parse_areas(body.content, fmt=body.format)
        stored = await areas.replace(tree, actor=admin.username)
    except AreaInUse as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    except AreaError as exc:
        raise invalid_body("content", str(exc)) from exc
    counts = {level.value: 0 for level in Level}
    for area in stored.areas.values():
        counts[area.level.value] += 1
    return ImportResult(revision=stored.revision, counts=counts)


@router.get("/{code}", responses={404: {"description": "No such area", "model": ErrorDetail}})
async def read_area(code: Code, _user: Reader, scope: ScopeDep) -> AreaPublic:
    area = scope.tree.get(code)
    if area is None or not scope.has_area(code):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no area {code!r}")
    return AreaPublic.of(area, scope.tree, scope)


@router.get(
    "/{code}/summary", responses={404: {"description": "No such area", "model": ErrorDetail}}
)
async def area_summary(
    code: Code, _user: Reader, scope: ScopeDep, db: DatabaseDep, store: StoreDep
) -> AreaSummary:
    """The area's readiness (from the sites' last recorded scores), open alerts, activations
    and conversions under way, and the same for each of its children: the rolled-up view of
    a parent over its children."""
    tree = scope.tree
    if code not in tree.areas or not scope.has_area(code):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no area {code!r}")
    counts = await area_counts(db, tree, [code, *tree.children(code)], store)
    public = [AreaCountsPublic(**c.__dict__) for c in counts]
    return AreaSummary(area=public[0], children=public[1:])
