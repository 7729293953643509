"""Rendering console pages: Jinja2 with autoescape on, the language, the user, the headers.

Every page is rendered with ``t`` (the catalogue), ``tv`` (a state's words), ``when`` (a time
in the service's time zone), ``can`` (does the user hold a permission), ``user``,
``everywhere`` (does the user act in every area) and ``user_area`` (their area's name). A
request with ``X-Console-Partial: 1`` gets only the page's live region (``<name>_live.html``),
which console.js swaps in when the server says something changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from control.auth import Permission, Principal, allows
from control.console.i18n import LANG_COOKIE, LANGS, catalogue, choose_lang, translator
from control.console.scope import known_scope
from control.settings import ControlSettings

__all__ = ["PARTIAL_HEADER", "lang_of", "render"]

PARTIAL_HEADER = "X-Console-Partial"
_TEMPLATES = Path(__file__).parent / "templates"

# Autoescape on for every template: data only ever reaches the page escaped. StrictUndefined:
# a misspelt variable fails the test that renders the page instead of printing nothing.
_env = Environment(
    loader=FileSystemLoader(_TEMPLATES),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def lang_of(request: Request) -> str:
    return choose_lang(
        request.query_params.get("lang"),
        request.cookies.get(LANG_COOKIE),
        request.headers.get("accept-language"),
    )


def _when(tz: ZoneInfo) -> Any:
    def when(ts_ms: int | None) -> str:
        if ts_ms is None:
            return "—"
        return (
            datetime.fromtimestamp(ts_ms / 1000, UTC).astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")
        )

    return when


def render(
    request: Request,
    page: str,
    context: Mapping[str, Any],
    *,
    user: Principal | None,
    status_code: int = 200,
) -> HTMLResponse:
    """Render ``<page>.html`` (or its live region for a partial request)."""
    settings: ControlSettings = request.state.settings
    lang = lang_of(request)
    t = translator(lang)

    def tv(group: str, value: object) -> str:
        key = f"{group}.{value}"
        return t(key) if key in catalogue(lang) else str(value)

    def can(permission: str) -> bool:
        return user is not None and allows(user.role, Permission(permission))

    scope = known_scope(request)
    # A page that did not read the scope (none should, once signed in) is framed as narrow
    # as it can be: the menu leaves out what needs every area.
    everywhere = scope.unlimited if scope is not None else False
    user_area = ""
    if user is not None and user.area is not None:
        place = scope.tree.get(user.area) if scope is not None else None
        user_area = place.name if place is not None else user.area
    partial = request.headers.get(PARTIAL_HEADER) == "1"
    name = f"{page}_live.html" if partial else f"{page}.html"
    body = _env.get_template(name).render(
        **context,
        page=page,
        t=t,
        tv=tv,
        can=can,
        when=_when(ZoneInfo(settings.sirens.timezone)),
        user=user,
        everywhere=everywhere,
        user_area=user_area,
        lang=lang,
        langs=LANGS,
        path=request.url.path,
        # The strings console.js needs, as data (a JSON script element, not code).
        js_strings={k: v for k, v in catalogue(lang).items() if k.startswith("js.")},
    )
    response = HTMLResponse(body, status_code=status_code)
    # Pages show live operational data: never from a cache, and per-language.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Vary"] = f"Cookie, Accept-Language, {PARTIAL_HEADER}"
    explicit = request.query_params.get("lang")
    if explicit and explicit in LANGS:
        response.set_cookie(
            LANG_COOKIE,
            explicit,
            max_age=365 * 86400,
            path="/console",
            secure=settings.cookie_secure,
            httponly=True,
            samesite="strict",
        )
    return response
