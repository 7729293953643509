"""Who may open which console page, and the console's locks: sign-in CSRF, redirects, headers,
escaping. The console is mounted outside the API's OpenAPI spec, so the role matrix of
test_role_matrix.py does not see it: ``PAGES`` is its own decision record, and must name every
route the console serves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
from control_helpers import PASSWORDS, bearer, control_settings, create_users, login, serve
from fastapi.routing import APIRoute

from control.auth import ROLE_ORDER, Role
from control.console import create_console
from control.console.login import CSRF_COOKIE, CSRF_FIELD
from control.console.security import CSP

pytestmark = pytest.mark.integration

PUBLIC: Literal["public"] = "public"

# (METHOD, path inside /console) → the lowest role that may open it.
PAGES: dict[tuple[str, str], Role | Literal["public"]] = {
    ("GET", "/"): Role.VIEWER,
    ("GET", "/login"): PUBLIC,
    ("POST", "/login"): PUBLIC,
    ("GET", "/fleet"): Role.VIEWER,
    ("GET", "/sites/{site}"): Role.VIEWER,
    ("GET", "/conversions"): Role.VIEWER,
    ("GET", "/alerts"): Role.VIEWER,
    ("GET", "/sirens"): Role.VIEWER,
    ("GET", "/activations/{activation_id}"): Role.VIEWER,
    ("GET", "/work-orders"): Role.VIEWER,
    ("GET", "/work-orders/{order_id}"): Role.VIEWER,
    ("GET", "/audit"): Role.COMMANDER,
    ("GET", "/events"): Role.VIEWER,
}
EXAMPLES = {
    "{site}": "shelter-99",
    "{activation_id}": "act-000000000000",
    "{order_id}": "wo-000000000000",
}


def _routes(routes: list[Any]) -> list[APIRoute]:
    # FastAPI keeps an included router as one entry holding the router's own routes.
    out: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            out.append(route)
        elif hasattr(route, "original_router"):
            out += _routes(route.original_router.routes)
    return out


def served() -> set[tuple[str, str]]:
    return {
        (method, route.path)
        for route in _routes(create_console().routes)
        for method in route.methods or ()
    }


def example(path: str) -> str:
    for name, value in EXAMPLES.items():
        path = path.replace(name, value)
    return "/console" + path


def test_every_console_route_has_a_row() -> None:
    assert served() == set(PAGES), (
        f"routes without a row: {sorted(served() - set(PAGES))}; "
        f"rows without a route: {sorted(set(PAGES) - served())}"
    )


async def _status(client: httpx.AsyncClient, method: str, url: str, headers: dict[str, str]) -> int:
    # The event stream never ends: read the status line and hang up.
    async with client.stream(method, url, headers=headers) as resp:
        return resp.status_code


async def test_every_page_refuses_strangers_and_lower_roles(tmp_path: Path) -> None:
    settings = control_settings(
        f"sqlite:///{tmp_path / 'control.db'}", f"sqlite:///{tmp_path / 'store.db'}"
    )
    await create_users(settings)
    async with serve(settings) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        tokens = {r: bearer(await login(client, r.value, PASSWORDS[r])) for r in Role}
        wrong: list[str] = []
        for (method, path), access in sorted(PAGES.items()):
            if access == PUBLIC:
                continue
            target = example(path)
            anonymous = await _status(client, method, target, {})
            # A person is sent to sign in; the event stream (a script) gets a plain 401.
            expected = 401 if path == "/events" else 303
            if anonymous != expected:
                wrong.append(f"{method} {path} anonymous: {anonymous}, not {expected}")
            for role in ROLE_ORDER:
                got = await _status(client, method, target, tokens[role])
                if role.at_least(access) and got in (401, 403):
                    wrong.append(f"{method} {path} as {role}: {got}, not allowed")
                if not role.at_least(access) and got != 403:
                    wrong.append(f"{method} {path} as {role}: {got}, not 403")
        assert not wrong, "\n".join(wrong)
        anonymous_page = await client.get("/console/sirens?district=north")
        assert anonymous_page.headers["location"] == (
            "/console/login?next=/console/sirens%3Fdistrict%3Dnorth"
        )


async def test_sign_in_needs_the_form_token_and_our_origin(tmp_path: Path) -> None:
    settings = control_settings(
        f"sqlite:///{tmp_path / 'control.db'}", f"sqlite:///{tmp_path / 'store.db'}"
    )
    await create_users(settings, (Role.VIEWER,))
    form = {"username": "viewer", "password": PASSWORDS[Role.VIEWER]}
    async with serve(settings) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        page = await client.get("/console/login")
        assert page.status_code == 200
        assert page.headers["content-security-policy"] == CSP
        assert "unsafe-inline" not in CSP
        assert page.headers["x-frame-options"] == "DENY"
        # The cookies are Secure (production mode): httpx keeps them off plain HTTP, so the
        # test carries them by hand, as a browser on loopback does.
        token = client.cookies[CSRF_COOKIE]
        assert f'value="{token}"' in page.text
        with_cookie = {"Cookie": f"{CSRF_COOKIE}={token}"}

        # No token in the form (a cross-site form cannot read it), a wrong one, no cookie
        # (SameSite=Strict keeps it off a cross-site post), a foreign Origin: all refused.
        for data, headers in (
            (form, with_cookie),
            (form | {CSRF_FIELD: "guessed"}, with_cookie),
            (form | {CSRF_FIELD: token}, {}),
            (form | {CSRF_FIELD: token}, with_cookie | {"Origin": "https://evil.example"}),
        ):
            client.cookies.clear()
            resp = await client.post("/console/login", data=data, headers=headers)
            assert resp.status_code == 403, (data, headers)
            assert "login" in resp.text
            assert settings.cookie_name not in resp.headers.get("set-cookie", "")

        # With the token: signed in, and only ever sent to a console page.
        client.cookies.clear()
        resp = await client.post(
            "/console/login",
            data=form | {CSRF_FIELD: token, "next": "https://evil.example/console/x"},
            headers=with_cookie | {"Origin": url},
        )
        assert resp.status_code == 303
        assert resp.headers["location"] == "/console/fleet"
        cookie = resp.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" in cookie
        session = {"Cookie": f"{settings.cookie_name}={resp.cookies[settings.cookie_name]}"}
        client.cookies.clear()
        fleet = await client.get("/console/fleet", headers=session)
        assert fleet.status_code == 200
        assert fleet.headers["cache-control"] == "no-store"
        # The console's cookie works the API too, which still wants its CSRF header on changes.
        assert (await client.post("/api/v1/auth/logout", headers=session)).status_code == 403
        ok = await client.post(
            "/api/v1/auth/logout", headers=session | {"X-Requested-With": "console"}
        )
        assert ok.status_code == 204
        # Signed out: the pages send the browser back to the form.
        assert (await client.get("/console/fleet", headers=session)).status_code == 303


async def test_data_is_escaped_on_every_page(tmp_path: Path) -> None:
    settings = control_settings(
        f"sqlite:///{tmp_path / 'control.db'}", f"sqlite:///{tmp_path / 'store.db'}"
    )
    await create_users(settings, (Role.COMMANDER,))
    evil = "<script>alert(1)</script>"
    async with serve(settings) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        auth = bearer(await login(client, "commander", PASSWORDS[Role.COMMANDER]))
        body = {
            "id": "s-1",
            "name": evil,
            "site": "site-1",
            "gateway": "gw-1",
            "device": "siren",
            "lat": 36.0,
            "lon": 120.0,
            "radius_m": 500,
        }
        assert (await client.post("/api/v1/sirens", json=body, headers=auth)).status_code == 201
        order = await client.post(
            "/api/v1/work-orders",
            json={"site": "site-1", "title": evil, "assignee": evil},
            headers=auth,
        )
        assert order.status_code == 201, order.text
        order_page = f"/console/work-orders/{order.json()['id']}"
        for path in (
            "/console/sirens",
            "/console/audit",
            "/console/fleet",
            "/console/work-orders",
            order_page,
        ):
            page = await client.get(path, headers=auth)
            assert page.status_code == 200, path
            assert evil not in page.text, path
        assert (
            "&lt;script&gt;alert(1)&lt;/script&gt;"
            in (await client.get("/console/sirens", headers=auth)).text
        )
