"""Signing in and out: ``/api/v1/auth/login``, ``/logout`` and ``/me``."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from pydantic import BaseModel, Field

from control.api.deps import (
    BAD_JSON,
    FORBIDDEN,
    UNAUTHORIZED,
    CurrentUser,
    ErrorDetail,
    SessionsDep,
    SettingsDep,
    client_address,
    login_limiter,
)
from control.api.users import UserPublic
from control.auth import MAX_PASSWORD_LENGTH, LoginRateLimiter, Role

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])

# One answer for every refusal: unknown user, wrong password, locked, disabled.
_REFUSED = "wrong username or password"


class LoginRequest(BaseModel):
    username: Annotated[str, Field(min_length=1, max_length=64)]
    password: Annotated[str, Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)]


class LoginResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_ms: int
    user: UserPublic


class Me(BaseModel):
    username: str
    full_name: str
    role: Role


@router.post(
    "/login",
    responses=BAD_JSON
    | {
        401: {
            "description": "Wrong username or password (or the account is locked or disabled)",
            "model": ErrorDetail,
            "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
        },
        429: {
            "description": "Too many login attempts from this address; wait Retry-After s",
            "model": ErrorDetail,
            "headers": {"Retry-After": {"schema": {"type": "string"}}},
        },
    },
)
async def login(
    body: LoginRequest,
    request: Request,
    response: Response,
    sessions: SessionsDep,
    settings: SettingsDep,
    limiter: Annotated[LoginRateLimiter, Depends(login_limiter)],
) -> LoginResponse:
    """Sign in. The token is returned for API clients and set as an HTTP-only cookie for the
    console; either authenticates later requests until it expires or is logged out."""
    client = client_address(request)
    wait_s = limiter.check(client)
    if wait_s is not None:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            "too many login attempts; try again later",
            headers={"Retry-After": limiter.retry_after(wait_s)},
        )
    outcome = await sessions.login(body.username, body.password, client=client)
    if outcome.token is None or outcome.user is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, _REFUSED, headers={"WWW-Authenticate": "Bearer"}
        )
    response.set_cookie(
        settings.cookie_name,
        outcome.token,
        max_age=int(settings.token_ttl_s),
        path="/",
        secure=settings.cookie_secure,
        httponly=True,
        samesite="strict",
    )
    return LoginResponse(
        access_token=outcome.token,
        expires_ms=outcome.expires_ms,
        user=UserPublic.of(outcome.user),
    )


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={401: UNAUTHORIZED, 403: FORBIDDEN},
)
async def logout(
    user: CurrentUser, request: Request, sessions: SessionsDep, settings: SettingsDep
) -> Response:
    """End this session: the token (or cookie) used for this request stops working."""
    await sessions.logout(user, client=client_address(request))
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(
        settings.cookie_name,
        path="/",
        secure=settings.cookie_secure,
        httponly=True,
        samesite="strict",
    )
    return response


@router.get("/me", responses={401: UNAUTHORIZED})
async def me(user: CurrentUser) -> Me:
    return Me(username=user.username, full_name=user.full_name, role=user.role)
