"""CAP 1.2 messages: those published for activations and test days, and upstream ones read.

The list is metadata (JSON); each message's document is served as ``application/cap+xml``.
Readers need ``sirens.read``. Pre-filling a request from upstream CAP is
``POST /api/v1/activations/from-cap`` (control/api/activations.py).

Areas (docs/cap.md, "Areas and scope"): a message follows what it is about. One of an
activation (ours, or the upstream one that pre-filled it) is listed to whoever sees the
activation, but its document, which names every siren's area, is served only to a caller
whose area holds all of them. A test-day programme follows its schedule. An upstream message
that pre-filled nothing is placed nowhere: only callers who see every area see it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, status

from control.api.deps import FORBIDDEN, UNAUTHORIZED, Allow, ScopeDep, StrictQuery
from control.api.siren_errors import NOT_FOUND, siren_service
from control.areas import Scope
from control.auth import Permission, Principal
from control.capfeed import CapFeed, CapMessagePublic, public
from control.db import CapMessage
from control.schedules import ScheduleService

__all__ = ["CAP_XML", "activation_router", "cap_feed", "router"]

CAP_XML = "application/cap+xml"

router = APIRouter(
    prefix="/api/v1/cap",
    tags=["cap"],
    dependencies=[StrictQuery],
    responses={401: UNAUTHORIZED, 403: FORBIDDEN},
)

Reader = Annotated[Principal, Allow(Permission.SIRENS_READ)]
Identifier = Annotated[str, Path(pattern=r"^[^\s,<&/]{1,255}$")]
ActivationId = Annotated[str, Path(pattern=r"^act-[0-9a-f]{12}$")]


def cap_feed(request: Request) -> CapFeed:
    feed: CapFeed = request.state.cap
    return feed


def _schedules(request: Request) -> ScheduleService:
    service: ScheduleService = request.state.schedules
    return service


def _no_message(identifier: str) -> HTTPException:
    return HTTPException(
        status.HTTP_404_NOT_FOUND, f"no CAP message {identifier!r} (GET /api/v1/cap lists them)"
    )


async def _check_document(request: Request, scope: Scope, row: CapMessage) -> None:
    """404 for a message the caller does not see; 403 for one of an activation they see
    only in part (the document names the other areas' sirens)."""
    if row.activation is not None:
        sites = await siren_service(request).target_sites(row.activation) or []
        if not any(scope.has_site(site) for site in sites):
            raise _no_message(row.identifier)
        if not scope.covers_sites(sites):
            needed = scope.escalation_area(sites) or "the root"
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"this CAP document covers sirens outside your area ({scope.area}): "
                f"a user of area {needed} may read it",
            )
        return
    if row.schedule is not None and await _schedules(request).in_scope(row.schedule, scope):
        return
    raise _no_message(row.identifier)


@router.get("")
async def list_cap(
    _user: Reader,
    request: Request,
    scope: ScopeDep,
    activation: Annotated[str | None, Query(pattern=r"^act-[0-9a-f]{12}$")] = None,
    direction: Literal["out", "in"] | None = None,
    msg_type: Literal["Alert", "Update", "Cancel"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[CapMessagePublic]:
    """Newest first: what was published (``out``) and read from upstream (``in``);
    ``published`` is null while a message waits for the broker. Only those of the caller's
    area: of activations with a target there, and of schedules wholly there."""
    schedules = (
        None
        if scope.unlimited
        else [s.name for s in await _schedules(request).list_schedules(scope=scope)]
    )
    rows = await cap_feed(request).recent(
        activation=activation,
        direction=direction,
        msg_type=msg_type,
        limit=limit,
        sites=scope.sites,
        schedules=schedules,
    )
    return [public(r) for r in rows]


@router.get(
    "/{identifier}",
    response_class=Response,
    responses={
        **NOT_FOUND,
        200: {
            "description": "The CAP 1.2 document as published or received",
            "content": {CAP_XML: {"schema": {"type": "string"}}},
        },
    },
)
async def get_cap(
    _user: Reader, request: Request, scope: ScopeDep, identifier: Identifier
) -> Response:
    """The document itself (ours first when an upstream message has the same identifier).
    403 when it covers sirens outside the caller's area."""
    row = await cap_feed(request).get(identifier)
    if row is None:
        raise _no_message(identifier)
    if not scope.unlimited:
        await _check_document(request, scope, row)
    return Response(row.xml.encode("utf-8"), media_type=CAP_XML)


activation_router = APIRouter(
    prefix="/api/v1/activations",
    tags=["cap"],
    dependencies=[StrictQuery],
    responses={401: UNAUTHORIZED, 403: FORBIDDEN},
)


@activation_router.get("/{activation_id}/cap")
async def activation_cap(
    _user: Reader, request: Request, scope: ScopeDep, activation_id: ActivationId
) -> list[CapMessagePublic]:
    """The CAP messages of an activation, newest first (none for a silent test, or for a
    scheduled audible test: its run's programme message covers it; none for an activation
    the caller does not see, as for one that does not exist)."""
    if not scope.unlimited:
        sites = await siren_service(request).target_sites(activation_id) or []
        if not any(scope.has_site(site) for site in sites):
            return []
    rows = await cap_feed(request).recent(activation=activation_id, limit=1000)
    return [public(r) for r in rows]
