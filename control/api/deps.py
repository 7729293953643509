"""Dependencies shared by the routers: the store, the database, and who is calling.

A caller authenticates with a bearer token (``Authorization: Bearer …``, for scripts and
integrations) or with the console's session cookie. The token wins when both are sent.

Cookies travel with every request the browser makes, including ones another site triggers, so
a cookie-authenticated request that changes something (any method but GET, HEAD, OPTIONS) must
also prove it came from our own pages: it must carry ``X-Requested-With`` (which a cross-site
form cannot send, and a cross-site script cannot send without a CORS preflight that this
service never grants), and an ``Origin`` header, when present, must name this host. SameSite=
Strict on the cookie already stops most of this; the check is the second lock on the door.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from control.areas import AreaStore, Scope
from control.auth import (
    MINIMUM_ROLE,
    Accounts,
    LoginRateLimiter,
    Permission,
    Principal,
    Role,
    Sessions,
    hashing_for,
)
from control.db import Database
from control.settings import ControlSettings
from shelterwatch.store import TimeSeriesStore

__all__ = [
    "BAD_JSON",
    "FORBIDDEN",
    "UNAUTHORIZED",
    "AccountsDep",
    "Allow",
    "AreasDep",
    "CurrentUser",
    "DatabaseDep",
    "ErrorDetail",
    "ScopeDep",
    "SessionsDep",
    "SettingsDep",
    "StoreDep",
    "StrictQuery",
    "client_address",
    "invalid_body",
    "login_limiter",
    "require_role",
]

_bearer = HTTPBearer(auto_error=False)
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "X-Requested-With"


class ErrorDetail(BaseModel):
    detail: str


# Declared on every protected router, so the OpenAPI spec lists the 401 each route can answer.
UNAUTHORIZED: dict[str, Any] = {
    "description": "Not signed in: missing, wrong, expired or revoked token or cookie",
    "model": ErrorDetail,
    "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
}
FORBIDDEN: dict[str, Any] = {
    "description": "Signed in, but the role may not do this (or a cross-site cookie request)",
    "model": ErrorDetail,
}


# FastAPI answers 400 (not 422) to a body that is not JSON at all; routes with a JSON body
# declare it with ``responses=BAD_JSON`` so clients generated from the spec expect it.
BAD_JSON: dict[int | str, dict[str, Any]] = {
    400: {"description": "The body is not valid JSON", "model": ErrorDetail}
}


def invalid_body(field: str | None, message: str) -> RequestValidationError:
    """A 422 for a body (field) whose meaning no schema states (an area that does not exist),
    in FastAPI's own shape, so clients read it like every other body problem."""
    loc = ("body", field) if field else ("body",)
    return RequestValidationError(
        [{"type": "value_error", "loc": loc, "msg": message, "input": None}]
    )


def _settings(request: Request) -> ControlSettings:
    settings: ControlSettings = request.state.settings
    return settings


def _store(request: Request) -> TimeSeriesStore:
    store: TimeSeriesStore = request.state.store
    return store


def _database(request: Request) -> Database:
    db: Database = request.state.db
    return db


def _areas(request: Request) -> AreaStore:
    areas: AreaStore = request.state.areas
    return areas


SettingsDep = Annotated[ControlSettings, Depends(_settings)]
AreasDep = Annotated[AreaStore, Depends(_areas)]
StoreDep = Annotated[TimeSeriesStore, Depends(_store)]
DatabaseDep = Annotated[Database, Depends(_database)]


def _sessions(db: DatabaseDep, settings: SettingsDep) -> Sessions:
    return Sessions(db, settings)


def _accounts(db: DatabaseDep, settings: SettingsDep) -> Accounts:
    return Accounts(db, hashing_for(settings))


SessionsDep = Annotated[Sessions, Depends(_sessions)]
AccountsDep = Annotated[Accounts, Depends(_accounts)]


def client_address(request: Request) -> str:
    # Behind a reverse proxy this is the proxy, unless uvicorn trusts its X-Forwarded-For
    # (--forwarded-allow-ips): see docs/security.md.
    return request.client.host if request.client else "unknown"


def login_limiter(request: Request) -> LoginRateLimiter:
    """The app's login rate limiter, made on first use and kept on the app (not a global, so
    two apps in one process, as in the tests, count apart)."""
    limiter: LoginRateLimiter | None = getattr(request.app.state, "login_limiter", None)
    if limiter is None:
        limiter = LoginRateLimiter(_settings(request).login_rate_per_min)
        request.app.state.login_limiter = limiter
    return limiter


def _unauthorized() -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        "not signed in, or the session has ended",
        headers={"WWW-Authenticate": "Bearer"},
    )


def _same_origin(request: Request) -> bool:
    if CSRF_HEADER.lower() not in request.headers:
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    # Compare hosts only: behind a TLS-terminating proxy the scheme we see is not the browser's.
    return urlsplit(origin).netloc.lower() == request.headers.get("host", "").lower()


async def _current_user(
    request: Request,
    sessions: SessionsDep,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is not None:
        principal = await sessions.resolve(credentials.credentials)
        if principal is None:
            raise _unauthorized()
        # The audit middleware records the actor from here.
        request.state.user = principal
        return principal
    if request.headers.get("authorization"):
        # A header under another scheme (Basic ...) is a client mistake, not a cookie login.
        raise _unauthorized()
    cookie = request.cookies.get(settings.cookie_name)
    if not cookie:
        raise _unauthorized()
    principal = await sessions.resolve(cookie)
    if principal is None:
        raise _unauthorized()
    if request.method not in _SAFE_METHODS and not _same_origin(request):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"a cookie-authenticated {request.method} needs the {CSRF_HEADER} header "
            "and, if it sends Origin, this host's origin",
        )
    request.state.user = principal
    return principal


CurrentUser = Annotated[Principal, Depends(_current_user)]


async def _scope(user: CurrentUser, areas: AreasDep) -> Scope:
    return Scope(await areas.current(), user.area)


# Where the caller may see and act (control/areas/scope.py). A route that reads or changes
# anything placed in an area takes it, and answers 404 for what lies outside, as if it did
# not exist, so that nothing about a neighbouring area leaks.
ScopeDep = Annotated[Scope, Depends(_scope)]


def require_role(minimum: Role) -> Any:
    """``dependencies=[require_role(Role.ADMIN)]``: the caller's role must be at least this."""

    async def check(user: CurrentUser) -> Principal:
        if not user.role.at_least(minimum):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"this needs the role {minimum.value} or higher; you are {user.role.value}",
            )
        return user

    return Depends(check)


# Capitalised: it reads as a declaration in a route, like FastAPI's Depends.
def Allow(permission: Permission) -> Any:
    """``dependencies=[Allow(Permission.SITES_READ)]``: the table in control/auth/roles.py
    decides which roles hold ``permission``. To get the caller too, annotate a parameter:
    ``user: Annotated[Principal, Allow(Permission.X)]``."""
    return require_role(MINIMUM_ROLE[permission])


async def _reject_unknown_query(request: Request) -> None:
    # FastAPI ignores query parameters it does not know, so `?limt=5` would silently mean
    # the default. On routes that take query parameters, an unknown one is an error instead.
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    known = _query_names(dependant)
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        # The same shape as FastAPI's own validation errors, as the spec documents for 422.
        raise RequestValidationError(
            [
                {
                    "type": "extra_forbidden",
                    "loc": ("query", name),
                    "msg": f"Unknown query parameter; this route takes {sorted(known)}",
                    "input": request.query_params[name],
                }
                for name in unknown
            ]
        )


def _query_names(dependant: Any) -> set[str]:
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


StrictQuery = Depends(_reject_unknown_query)
