"""The console as an ASGI app of its own, mounted by the control service at ``/console``.

A mounted app rather than routes on the API: its HTML pages stay out of the API's OpenAPI
spec (and so out of its fuzzing and client generation), while sharing the lifespan state
(database, store, services), the session cookie and the audit middleware of the control
service. Its own test (tests/unit/test_console_routes.py) checks that every page refuses
anonymous callers and callers without the page's permission.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from control.api.guards import DatabaseUnavailable
from control.auth import Principal
from control.console import audit_page, conversions, fleet, live, login, operations, work_orders
from control.console.render import render
from control.console.scope import scope_of
from control.console.security import SecurityHeaders
from shelterwatch.errors import ShelterwatchError

__all__ = ["MOUNT", "PUBLIC_PATHS", "create_console"]

MOUNT = "/console"
STATIC = Path(__file__).parent / "static"
# Paths anyone may load: the sign-in page and the static files (code and styles, no data).
PUBLIC_PATHS = ("/login", "/static")


def _wants_page(request: Request) -> bool:
    # The event stream and scripts get a status; a person at a page gets sent to sign in.
    return request.method == "GET" and not request.url.path.startswith(f"{MOUNT}/events")


async def _signed_in(request: Request) -> Principal | None:
    """The caller an error page is shown to, with their scope read for its menu."""
    user: Principal | None = getattr(request.state, "user", None)
    if user is not None:
        # Without the tree the page is framed as narrowly as it can be (render.py).
        with contextlib.suppress(SQLAlchemyError, ShelterwatchError, OSError):
            await scope_of(request, user)
    return user


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 401 and _wants_page(request):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"{MOUNT}/login?next={quote(target, safe='/')}", status_code=303)
    if not _wants_page(request):
        return Response(str(exc.detail), status_code=exc.status_code, headers=exc.headers)
    user = await _signed_in(request)
    return render(
        request,
        "error",
        {"status": exc.status_code, "detail": str(exc.detail)},
        user=user,
        status_code=exc.status_code,
    )


async def _invalid(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    detail = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in exc.errors()
    )
    user = await _signed_in(request)
    return render(request, "error", {"status": 422, "detail": detail}, user=user, status_code=422)


def create_console() -> FastAPI:
    """The console app; mount it with ``app.mount(MOUNT, create_console())``."""
    console = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @console.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse(f"{MOUNT}/fleet", status_code=303)

    for module in (login, fleet, operations, conversions, work_orders, audit_page, live):
        console.include_router(module.router)
    console.mount("/static", StaticFiles(directory=STATIC), name="static")
    console.add_exception_handler(StarletteHTTPException, _http_error)
    console.add_exception_handler(RequestValidationError, _invalid)
    # The mounted app's own error middleware would answer a 500 before the control app's
    # DatabaseUnavailable saw the error: the console needs its own.
    console.add_middleware(DatabaseUnavailable)
    console.add_middleware(SecurityHeaders)
    return console
