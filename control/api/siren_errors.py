"""How the siren routers answer the siren service's errors, and the responses they declare."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, Request, status

from control.api.deps import ErrorDetail
from control.sirens import (
    Conflict,
    InvalidInput,
    NotAllowed,
    NotFound,
    SirenError,
    SirenService,
    SirensUnavailable,
)

__all__ = ["CONFLICT", "NOT_FOUND", "UNAVAILABLE", "http_error", "siren_service"]

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such siren, group, signal or activation", "model": ErrorDetail}
}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "The request contradicts the current state", "model": ErrorDetail}
}
UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {"description": "Cannot act now (audit trail or commands)", "model": ErrorDetail}
}


def http_error(exc: SirenError) -> HTTPException:
    if isinstance(exc, NotFound):
        return HTTPException(status.HTTP_404_NOT_FOUND, str(exc))
    if isinstance(exc, Conflict):
        return HTTPException(status.HTTP_409_CONFLICT, str(exc))
    if isinstance(exc, InvalidInput):
        return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc))
    if isinstance(exc, NotAllowed):
        return HTTPException(status.HTTP_403_FORBIDDEN, str(exc))
    if isinstance(exc, SirensUnavailable):
        return HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc))
    return HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR, str(exc))


def siren_service(request: Request) -> SirenService:
    service: SirenService = request.state.sirens
    return service
