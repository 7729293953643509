"""The audit page: browse the trail newest first, filter by actor and action, verify the
chain and export it (the last two through the audit API).

As in the audit API, the trail is for people who act in every area: its rows are not placed
in areas, and verifying the chain needs every row. A user of a narrower area gets the
console's 403 page saying so (and no menu link to it)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy import select

from control.api.deps import Allow, DatabaseDep
from control.auth import Permission, Principal
from control.console.render import render
from control.console.scope import CallerScope
from control.db import AuditEntry

__all__ = ["router"]

router = APIRouter()

PAGE = 100


def _like(text: str) -> str:
    # A plain substring: the user's % and _ are not wildcards.
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@router.get("/audit")
async def audit_page(
    request: Request,
    user: Annotated[Principal, Allow(Permission.AUDIT_READ)],
    scope: CallerScope,
    db: DatabaseDep,
    actor: Annotated[str | None, Query(max_length=64)] = None,
    action: Annotated[str | None, Query(max_length=200)] = None,
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
) -> Response:
    if not scope.unlimited:
        return render(
            request,
            "error",
            {"status": 403, "detail": "", "area_only": True},
            user=user,
            status_code=403,
        )
    query = select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(PAGE + 1)
    if actor:
        query = query.where(AuditEntry.actor == actor)
    if action:
        query = query.where(AuditEntry.action.like(_like(action), escape="\\"))
    if before is not None:
        query = query.where(AuditEntry.seq < before)
    async with db.session() as s:
        rows = list(await s.scalars(query))
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    return render(
        request,
        "audit",
        {
            "rows": rows,
            "actor": actor or "",
            "action": action or "",
            "older": rows[-1].seq if more and rows else None,
        },
        user=user,
    )
