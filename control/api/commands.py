"""Commands to gateways: send one (duty officer or higher), read them and their outcomes.

Sending answers 202: the command is recorded and queued, not yet done. Its record then follows
the gateway's answers (``GET /api/v1/commands/{id}``), one event per answer.

A command belongs where its gateway does: the area tree lists each site's gateways. A caller
of an area may send only to the gateways of its sites, and sees only their commands. A gateway
outside the area answers 404, with the same words as one that does not exist (a gateway the
tree does not place belongs to the root, so for a county both are simply not theirs): 404
rather than 403 because a 403 would confirm that the gateway exists elsewhere.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request, status
from pydantic import BaseModel, Field

from control.api.deps import (
    BAD_JSON,
    FORBIDDEN,
    UNAUTHORIZED,
    Allow,
    ErrorDetail,
    ScopeDep,
    StrictQuery,
)
from control.auth import Permission, Principal
from control.commands import MAX_TTL_S, CommandService, CommandUnavailable, InvalidCommand
from control.db import CommandRecord
from shelterwatch.contract import SLUG_PATTERN, Value

__all__ = ["CommandCreate", "CommandDetail", "CommandEventPublic", "CommandPublic", "router"]

router = APIRouter(
    prefix="/api/v1/commands",
    tags=["commands"],
    dependencies=[StrictQuery],
    responses={401: UNAUTHORIZED, 403: FORBIDDEN},
)

Operator = Annotated[Principal, Allow(Permission.COMMANDS_OPERATE)]
Reader = Annotated[Principal, Allow(Permission.COMMANDS_READ)]
Slug = Annotated[str, Field(pattern=SLUG_PATTERN, max_length=64)]


def _service(request: Request) -> CommandService:
    service: CommandService = request.state.commands
    return service


class CommandCreate(BaseModel):
    gateway: Slug
    device: Slug
    action: Annotated[str, Field(min_length=1, max_length=64)]
    params: dict[str, Value] = Field(default_factory=dict)
    ttl_s: Annotated[float, Field(gt=0, le=MAX_TTL_S)] = 30.0


class CommandEventPublic(BaseModel):
    # pending (submitted), sent (the broker took it), then the gateway's answers, or the
    # service's own verdict (timed_out, expired before it could be sent)
    state: str
    detail: str
    ts: int


class CommandPublic(BaseModel):
    id: str
    gateway: str
    device: str
    action: str
    params: dict[str, Any]
    actor: str
    ts: int
    expires: int
    state: str
    detail: str
    updated: int


class CommandDetail(CommandPublic):
    events: list[CommandEventPublic]


def _public(record: CommandRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "gateway": record.gateway,
        "device": record.device,
        "action": record.action,
        "params": json.loads(record.params),
        "actor": record.actor,
        "ts": record.ts_ms,
        "expires": record.expires_ms,
        "state": record.state,
        "detail": record.detail,
        "updated": record.updated_ms,
    }


def _detail(record: CommandRecord) -> CommandDetail:
    events = [CommandEventPublic(state=e.state, detail=e.detail, ts=e.ts_ms) for e in record.events]
    return CommandDetail(**_public(record), events=events)


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        **BAD_JSON,
        404: {"description": "No such gateway in the caller's area", "model": ErrorDetail},
        422: {"description": "Not a valid command"},
        503: {"description": "Commands cannot be sent now", "model": ErrorDetail},
    },
)
async def send_command(
    body: CommandCreate, user: Operator, request: Request, scope: ScopeDep
) -> CommandDetail:
    if not scope.has_gateway(body.gateway):
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"no gateway {body.gateway!r} in your area; GET /api/v1/areas lists your sites "
            "and their gateways",
        )
    try:
        record = await _service(request).send(
            body.gateway,
            body.device,
            body.action,
            body.params,
            actor=user.username,
            ttl_s=body.ttl_s,
        )
    except InvalidCommand as exc:
        raise HTTPException(422, str(exc)) from exc
    except CommandUnavailable as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from exc
    return _detail(record)


@router.get("")
async def list_commands(
    _user: Reader,
    request: Request,
    scope: ScopeDep,
    gateway: Annotated[str | None, Query(pattern=SLUG_PATTERN, max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[CommandPublic]:
    records = await _service(request).recent(gateway, limit, gateways=scope.gateways)
    return [CommandPublic(**_public(r)) for r in records]


@router.get(
    "/{command_id}",
    responses={404: {"description": "No such command", "model": ErrorDetail}},
)
async def get_command(
    _user: Reader,
    request: Request,
    scope: ScopeDep,
    command_id: Annotated[str, Path(min_length=1, max_length=128)],
) -> CommandDetail:
    record = await _service(request).get(command_id)
    if record is None or not scope.has_gateway(record.gateway):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no command {command_id!r}")
    return _detail(record)
