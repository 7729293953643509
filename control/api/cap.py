"""CAP 1.2 messages: those published for activations and test days, and upstream ones read.

The list is metadata (JSON); each message's document is served as ``application/cap+xml``.
Readers need ``sirens.read``. Pre-filling a request from upstream CAP is
``POST /api/v1/activations/from-cap`` (control/api/activations.py).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, status

from control.api.deps import FORBIDDEN, UNAUTHORIZED, Allow, StrictQuery
from control.api.siren_errors import NOT_FOUND
from control.auth import Permission, Principal
from control.capfeed import CapFeed, CapMessagePublic, public

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


@router.get("")
async def list_cap(
    _user: Reader,
    request: Request,
    activation: Annotated[str | None, Query(pattern=r"^act-[0-9a-f]{12}$")] = None,
    direction: Literal["out", "in"] | None = None,
    msg_type: Literal["Alert", "Update", "Cancel"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[CapMessagePublic]:
    """Newest first: what was published (``out``) and read from upstream (``in``);
    ``published`` is null while a message waits for the broker."""
    rows = await cap_feed(request).recent(
        activation=activation, direction=direction, msg_type=msg_type, limit=limit
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
async def get_cap(_user: Reader, request: Request, identifier: Identifier) -> Response:
    """The document itself (ours first when an upstream message has the same identifier)."""
    row = await cap_feed(request).get(identifier)
    if row is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"no CAP message {identifier!r} (GET /api/v1/cap lists them)"
        )
    return Response(row.xml.encode("utf-8"), media_type=CAP_XML)


activation_router = APIRouter(
    prefix="/api/v1/activations",
    tags=["cap"],
    dependencies=[StrictQuery],
    responses={401: UNAUTHORIZED, 403: FORBIDDEN},
)


@activation_router.get("/{activation_id}/cap")
async def activation_cap(
    _user: Reader, request: Request, activation_id: ActivationId
) -> list[CapMessagePublic]:
    """The CAP messages of an activation, newest first (none for a silent test, or for a
    scheduled audible test: its run's programme message covers it)."""
    rows = await cap_feed(request).recent(activation=activation_id, limit=1000)
    return [public(r) for r in rows]
