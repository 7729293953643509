"""Signing in to the console: a plain HTML form, the existing sessions, an HttpOnly cookie.

CSRF: the login form is the console's only form post (every other action is a script's
``fetch`` to the JSON API, which control/api/deps.py guards with ``X-Requested-With`` and the
Origin check). Login CSRF, where another site signs a browser in as the attacker, is stopped
by a double-submit token: a random value in an HttpOnly, SameSite=Strict cookie and in a
hidden field, which must match; a cross-site form can send neither the cookie (Strict) nor
read the value. An ``Origin`` that names another host is refused as well. See
docs/dashboards.md, "Console".
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from control.api.deps import SessionsDep, SettingsDep, client_address, login_limiter
from control.auth import MAX_PASSWORD_LENGTH, LoginRateLimiter
from control.console.render import render

__all__ = ["CSRF_COOKIE", "CSRF_FIELD", "router", "safe_next"]

router = APIRouter()

CSRF_COOKIE = "shelterwatch_csrf"
# "token" in the name: the audit trail masks it like a password.
CSRF_FIELD = "csrf_token"
_MAX_FORM_BYTES = 8192
HOME = "/console/fleet"


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a console path only, never another site."""
    if not target:
        return HOME
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/console/"):
        return HOME
    if parts.path.startswith("/console/login"):
        return HOME
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _page(
    request: Request, *, error: str | None, next_path: str, settings: SettingsDep, status: int
) -> Response:
    token = secrets.token_urlsafe(32)
    response = render(
        request,
        "login",
        {"csrf": token, "csrf_field": CSRF_FIELD, "error": error, "next": next_path},
        user=None,
        status_code=status,
    )
    response.set_cookie(
        CSRF_COOKIE,
        token,
        max_age=3600,
        path="/console/login",
        secure=settings.cookie_secure,
        httponly=True,
        samesite="strict",
    )
    return response


@router.get("/login")
async def login_page(request: Request, settings: SettingsDep, next: str | None = None) -> Response:
    return _page(request, error=None, next_path=safe_next(next), settings=settings, status=200)


def _same_host(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        # Browsers send Origin on every POST; "null" comes from sandboxed or privacy contexts
        # and is left to the token, which such a context cannot have.
        return True
    return urlsplit(origin).netloc.lower() == request.headers.get("host", "").lower()


@router.post("/login")
async def login_submit(
    request: Request,
    sessions: SessionsDep,
    settings: SettingsDep,
    limiter: Annotated[LoginRateLimiter, Depends(login_limiter)],
) -> Response:
    body = await request.body()
    form = {k: v[0] for k, v in parse_qs(body[:_MAX_FORM_BYTES].decode("utf-8", "replace")).items()}
    next_path = safe_next(form.get("next"))
    cookie = request.cookies.get(CSRF_COOKIE, "")
    sent = form.get(CSRF_FIELD, "")
    if (
        not cookie
        or not hmac.compare_digest(cookie.encode(), sent.encode())
        or not _same_host(request)
    ):
        return _page(
            request, error="login.csrf", next_path=next_path, settings=settings, status=403
        )
    client = client_address(request)
    if limiter.check(client) is not None:
        return _page(
            request, error="login.too_many", next_path=next_path, settings=settings, status=429
        )
    username, password = form.get("username", ""), form.get("password", "")
    outcome = None
    if 0 < len(username) <= 64 and 0 < len(password) <= MAX_PASSWORD_LENGTH:
        outcome = await sessions.login(username, password, client=client)
    if outcome is None or outcome.token is None:
        return _page(
            request, error="login.refused", next_path=next_path, settings=settings, status=401
        )
    response = RedirectResponse(next_path, status_code=303)
    # The same cookie as POST /api/v1/auth/login sets: the API and the console share it.
    response.set_cookie(
        settings.cookie_name,
        outcome.token,
        max_age=int(settings.token_ttl_s),
        path="/",
        secure=settings.cookie_secure,
        httponly=True,
        samesite="strict",
    )
    response.delete_cookie(CSRF_COOKIE, path="/console/login")
    return response
