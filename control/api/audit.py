"""Audit routes: list recent rows, verify the chain, export it. Commanders and admins who act
in every area.

The trail is read whole or not at all. Its rows are not placed in areas (a row records an
actor, an action and a target as text, and many rows, such as logins or user changes, have no
site), and verifying the chain needs every row, since each row's hash covers the one before.
A trail cut to one area could not be verified, and deciding which rows are "about" an area
from their text would leak whatever it got wrong. So a caller of a narrower area gets 403,
told where their area's record is: its orders' reports and its alerts.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from control.api.deps import (
    FORBIDDEN,
    UNAUTHORIZED,
    Allow,
    CurrentUser,
    DatabaseDep,
    ErrorDetail,
    StrictQuery,
)
from control.areas import AreaStore, Scope
from control.audit import (
    AuditRecord,
    ExportFormat,
    Head,
    export_chunks,
    parse_head,
    read_head,
    read_page,
    verify_database,
)
from control.auth import Permission

__all__ = ["AuditEntryPublic", "AuditPage", "VerifyReport", "router"]


async def _whole_trail(request: Request, user: CurrentUser, db: DatabaseDep) -> None:
    # The trail's routes need only the database, and are also mounted on their own (the
    # audit tests do): without the app's area store, the tree is read from the database,
    # so a missing store can never mean "no areas, everyone sees everything".
    areas: AreaStore = getattr(request.state, "areas", None) or AreaStore(db)
    scope = Scope(await areas.current(), user.area)
    if not scope.unlimited:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "the audit trail is read whole, by people who act in every area: its rows are "
            "not placed in areas and verifying the chain needs every row. Your area "
            f"{scope.area!r} has its own record: the reports of its conversion orders "
            "(GET /api/v1/conversions/{id}/report), its alerts (GET /api/v1/alerts) and its "
            "maintenance reports; for the trail itself, ask someone of the root area",
        )


router = APIRouter(
    prefix="/api/v1/audit",
    tags=["audit"],
    # The role first, so a viewer hears about their role, not their area.
    dependencies=[Allow(Permission.AUDIT_READ), Depends(_whole_trail), StrictQuery],
    responses={401: UNAUTHORIZED, 403: FORBIDDEN},
)


class AuditEntryPublic(BaseModel):
    seq: int
    ts_ms: int
    actor: str
    action: str
    target: str
    # Canonical JSON text, exactly as hashed.
    params: str
    result: str
    prev_hash: str
    hash: str

    @classmethod
    def of(cls, record: AuditRecord) -> AuditEntryPublic:
        return cls.model_validate(record, from_attributes=True)


class HeadPublic(BaseModel):
    seq: int
    hash: str

    @classmethod
    def of(cls, head: Head | None) -> HeadPublic | None:
        return cls(seq=head.seq, hash=head.hash) if head is not None else None


class AuditPage(BaseModel):
    entries: list[AuditEntryPublic]
    # Pass as after_seq for the next page; None when this page is empty.
    next_after_seq: int | None
    # The newest row now: record "seq:hash" elsewhere to detect later truncation.
    head: HeadPublic | None


class VerifyReport(BaseModel):
    ok: bool
    checked: int
    first_bad_seq: int | None
    reason: str
    # The last row read (the chain's head when ok).
    head: HeadPublic | None


@router.get("")
async def list_entries(
    db: DatabaseDep,
    after_seq: Annotated[
        # Bounded to what the BIGINT column holds: a larger number is a 422, not a 500.
        int | None,
        Query(ge=0, le=2**63 - 1, description="rows after this seq; omit for the newest rows"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditPage:
    """Rows in ``seq`` order: the ``limit`` after ``after_seq``, or the newest ``limit``."""
    records = await read_page(db, after_seq=after_seq, limit=limit)
    return AuditPage(
        entries=[AuditEntryPublic.of(r) for r in records],
        next_after_seq=records[-1].seq if records else None,
        head=HeadPublic.of(await read_head(db)),
    )


_BAD_HEAD: dict[int | str, dict[str, Any]] = {
    400: {"description": "expect_head is not SEQ:HASH", "model": ErrorDetail}
}


@router.get("/verify", responses=_BAD_HEAD)
async def verify(
    db: DatabaseDep,
    expect_head: Annotated[
        str | None,
        Query(
            max_length=100,
            pattern=r"^[1-9][0-9]{0,17}:[0-9a-fA-F]{64}$",
            description="SEQ:HASH recorded earlier: also detects rows cut from the end",
        ),
    ] = None,
) -> VerifyReport:
    """Recompute the whole chain. A broken chain is still a 200, with ``ok`` false."""
    try:
        anchor = parse_head(expect_head) if expect_head is not None else None
    except ValueError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc
    result = await verify_database(db, expect_head=anchor)
    return VerifyReport(
        ok=result.ok,
        checked=result.checked,
        first_bad_seq=result.first_bad_seq,
        reason=result.reason,
        head=HeadPublic.of(result.head),
    )


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The whole trail, streamed",
            "content": {"application/x-ndjson": {}, "text/csv": {}},
        }
    },
)
async def export(
    db: DatabaseDep, format: Annotated[ExportFormat, Query()] = ExportFormat.jsonl
) -> StreamingResponse:
    """Every row in ``seq`` order as JSON Lines or CSV, streamed in chunks."""
    return StreamingResponse(
        export_chunks(db, format),
        media_type=format.media_type,
        headers={"Content-Disposition": f'attachment; filename="audit.{format.value}"'},
    )
