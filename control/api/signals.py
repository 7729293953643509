"""Signals: the catalogue the service sounds from (built in, plus sirens.signals_file).

Read-only on purpose: a signal that sounds to the public is reviewed configuration in the
settings' version control, not a runtime edit (see docs/sirens.md).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel

from control.api.deps import FORBIDDEN, UNAUTHORIZED, Allow, StrictQuery
from control.api.siren_errors import NOT_FOUND, http_error, siren_service
from control.auth import Permission
from control.sirens import SirenError
from shelterwatch.contract import SLUG_PATTERN, SignalSegment
from shelterwatch.signals import SignalDefinition

__all__ = ["SignalPublic", "router"]

router = APIRouter(
    prefix="/api/v1/signals",
    tags=["sirens"],
    dependencies=[Allow(Permission.SIRENS_READ), StrictQuery],
    responses={401: UNAUTHORIZED, 403: FORBIDDEN},
)


class SignalPublic(BaseModel):
    name: str
    title_zh: str
    title_en: str
    segments: list[SignalSegment]
    repeat: int
    tone: str
    number: int | None
    description: str
    # From the first sound to the end of the last.
    duration_s: float


def _public(signal: SignalDefinition) -> SignalPublic:
    return SignalPublic(**signal.model_dump(), duration_s=signal.duration_s)


@router.get("")
async def list_signals(request: Request) -> list[SignalPublic]:
    return [_public(s) for s in siren_service(request).signals.all()]


@router.get("/{name}", responses=NOT_FOUND)
async def get_signal(
    request: Request, name: Annotated[str, Path(pattern=SLUG_PATTERN, max_length=64)]
) -> SignalPublic:
    try:
        return _public(siren_service(request).signals.get(name))
    except SirenError as exc:
        raise http_error(exc) from exc
