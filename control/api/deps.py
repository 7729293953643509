"""Dependencies shared by the routers: the store, and the caller's authentication."""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from shelterwatch.store import TimeSeriesStore

__all__ = ["UNAUTHORIZED", "Authenticated", "ErrorDetail", "StoreDep", "require_token"]

_bearer = HTTPBearer(auto_error=False)


class ErrorDetail(BaseModel):
    detail: str


# Declared on every protected router, so the OpenAPI spec lists the 401 each route can answer.
UNAUTHORIZED: dict[str, Any] = {
    "description": "Missing or wrong bearer token",
    "model": ErrorDetail,
    "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
}


def _store(request: Request) -> TimeSeriesStore:
    store: TimeSeriesStore = request.state.store
    return store


def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    expected: str = request.state.api_token
    given = credentials.credentials if credentials is not None else ""
    # Constant-time comparison: the token is the only secret between a caller and the API.
    if not given or not secrets.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing or wrong bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )


StoreDep = Annotated[TimeSeriesStore, Depends(_store)]
Authenticated = Depends(require_token)
