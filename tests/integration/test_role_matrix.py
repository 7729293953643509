"""Who may call what: every route of the live API, as every role and as nobody, against ONE table.

``ACCESS`` is the decision record. Each (METHOD, path) of the served OpenAPI spec must have a
row, and each row must name a served route, so a new route cannot ship without someone
deciding who may call it. A row's value is one of:

- ``PUBLIC``: no login needed (anonymous calls must not answer 401 or 403);
- a ``Role``: that role and every role above it (viewer < maintainer < duty_officer <
  commander < admin);
- a ``frozenset`` of roles: exactly those roles (for a duty that a higher role must not hold).

Then, for every route: anonymous → 401 (unless PUBLIC); an allowed role → anything but 401/403;
any other role → 403. Requests carry no body, so a route that needs one answers 422 to an
allowed caller and changes nothing; path parameters name things that do not exist
(``PATH_VALUES``), so an allowed call of an action answers 404 and changes nothing either.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import httpx
import pytest
from control_helpers import PASSWORDS, bearer, control_settings, create_users, login, serve
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from control import create_app
from control.auth import ROLE_ORDER, Role

pytestmark = pytest.mark.integration

PUBLIC: Literal["public"] = "public"
Access = Role | frozenset[Role] | Literal["public"]

# fmt: off
ACCESS: dict[tuple[str, str], Access] = {
    ("GET",  "/api/v1/health"):                      PUBLIC,
    ("POST", "/api/v1/auth/login"):                  PUBLIC,
    ("POST", "/api/v1/auth/logout"):                 Role.VIEWER,
    ("GET",  "/api/v1/auth/me"):                     Role.VIEWER,
    ("GET",  "/api/v1/sites"):                       Role.VIEWER,
    ("GET",  "/api/v1/sites/{site}/latest"):         Role.VIEWER,
    ("GET",  "/api/v1/sites/{site}/history"):        Role.VIEWER,
    ("GET",  "/api/v1/users"):                       Role.ADMIN,
    ("POST", "/api/v1/users"):                       Role.ADMIN,
    ("PUT",  "/api/v1/users/{username}/role"):       Role.ADMIN,
    ("PUT",  "/api/v1/users/{username}/password"):   Role.ADMIN,
    ("POST", "/api/v1/users/{username}/disable"):    Role.ADMIN,
    ("POST", "/api/v1/users/{username}/enable"):     Role.ADMIN,
    ("PUT",  "/api/v1/users/{username}/area"):       Role.ADMIN,
    ("GET",  "/api/v1/areas"):                       Role.VIEWER,
    ("GET",  "/api/v1/areas/export"):                Role.VIEWER,
    ("GET",  "/api/v1/areas/{code}"):                Role.VIEWER,
    ("GET",  "/api/v1/areas/{code}/summary"):        Role.VIEWER,
    # And only an admin who acts in every area (checked in the route).
    ("PUT",  "/api/v1/areas"):                       Role.ADMIN,
    ("GET",  "/api/v1/commands"):                    Role.VIEWER,
    ("GET",  "/api/v1/commands/{command_id}"):       Role.VIEWER,
    ("POST", "/api/v1/commands"):                    Role.DUTY_OFFICER,
    ("GET",  "/api/v1/audit"):                       Role.COMMANDER,
    ("GET",  "/api/v1/audit/verify"):                Role.COMMANDER,
    ("GET",  "/api/v1/audit/export"):                Role.COMMANDER,
    ("GET",  "/api/v1/alerts"):                      Role.VIEWER,
    ("GET",  "/api/v1/alerts/{alert_id}"):           Role.VIEWER,
    ("POST", "/api/v1/alerts/{alert_id}/ack"):       Role.MAINTAINER,
    ("GET",    "/api/v1/sirens"):                       Role.VIEWER,
    ("POST",   "/api/v1/sirens"):                       Role.COMMANDER,
    ("GET",    "/api/v1/sirens/export"):                Role.VIEWER,
    ("POST",   "/api/v1/sirens/import"):                Role.COMMANDER,
    ("GET",    "/api/v1/sirens/{siren_id}"):            Role.VIEWER,
    ("PUT",    "/api/v1/sirens/{siren_id}"):            Role.COMMANDER,
    ("DELETE", "/api/v1/sirens/{siren_id}"):            Role.COMMANDER,
    ("GET",    "/api/v1/siren-groups"):                 Role.VIEWER,
    ("POST",   "/api/v1/siren-groups"):                 Role.COMMANDER,
    ("GET",    "/api/v1/siren-groups/{group}"):         Role.VIEWER,
    ("PUT",    "/api/v1/siren-groups/{group}"):         Role.COMMANDER,
    ("DELETE", "/api/v1/siren-groups/{group}"):         Role.COMMANDER,
    ("GET",    "/api/v1/signals"):                      Role.VIEWER,
    ("GET",    "/api/v1/signals/{name}"):               Role.VIEWER,
    # The least any kind needs (a silent test); the kind's own permission is checked next.
    ("POST",   "/api/v1/activations"):                  Role.MAINTAINER,
    ("POST",   "/api/v1/activation-previews"):          Role.MAINTAINER,
    ("GET",    "/api/v1/activations"):                  Role.VIEWER,
    ("GET",    "/api/v1/activations/{activation_id}"):  Role.VIEWER,
    ("POST",   "/api/v1/activations/{activation_id}/approve"): Role.COMMANDER,
    ("POST",   "/api/v1/activations/{activation_id}/reject"):  Role.COMMANDER,
    ("POST",   "/api/v1/activations/{activation_id}/cancel"):  Role.MAINTAINER,
    ("GET",    "/api/v1/activations/{activation_id}/report"):  Role.VIEWER,
    # Upstream CAP asks for a live alert, a drill or an audible test: commands.operate.
    ("POST",   "/api/v1/activations/from-cap"):         Role.DUTY_OFFICER,
    ("GET",    "/api/v1/activations/{activation_id}/cap"):     Role.VIEWER,
    ("GET",    "/api/v1/cap"):                          Role.VIEWER,
    ("GET",    "/api/v1/cap/{identifier}"):             Role.VIEWER,
    ("GET",    "/api/v1/schedules"):                 Role.VIEWER,
    ("POST",   "/api/v1/schedules"):                 Role.DUTY_OFFICER,
    ("POST",   "/api/v1/schedules/preview"):         Role.DUTY_OFFICER,
    ("GET",    "/api/v1/schedules/{name}"):          Role.VIEWER,
    ("PUT",    "/api/v1/schedules/{name}"):          Role.DUTY_OFFICER,
    ("DELETE", "/api/v1/schedules/{name}"):          Role.DUTY_OFFICER,
    ("POST",   "/api/v1/schedules/{name}/enable"):   Role.DUTY_OFFICER,
    ("POST",   "/api/v1/schedules/{name}/disable"):  Role.DUTY_OFFICER,
    ("GET",    "/api/v1/schedules/{name}/runs"):     Role.VIEWER,
    ("GET",    "/api/v1/schedule-templates"):        Role.VIEWER,
    ("GET",    "/api/v1/conversion-plans"):          Role.VIEWER,
    ("GET",    "/api/v1/conversion-plans/{name}"):   Role.VIEWER,
    # A drill starts at once; a real order waits for a commander (checked in the service).
    ("POST",   "/api/v1/conversions"):               Role.DUTY_OFFICER,
    ("GET",    "/api/v1/conversions"):               Role.VIEWER,
    ("GET",    "/api/v1/conversions/{order_id}"):    Role.VIEWER,
    ("POST",   "/api/v1/conversions/{order_id}/approve"): Role.COMMANDER,
    ("POST",   "/api/v1/conversions/{order_id}/confirm"): Role.DUTY_OFFICER,
    # A drill's cancel needs commands.operate, a real order's commands.approve (the service).
    ("POST",   "/api/v1/conversions/{order_id}/cancel"):  Role.DUTY_OFFICER,
    ("GET",    "/api/v1/conversions/{order_id}/report"):  Role.VIEWER,
    ("GET",    "/api/v1/maintenance/programme"):     Role.VIEWER,
    ("GET",    "/api/v1/maintenance/sites/{site}"):  Role.VIEWER,
    # alerts.ack: the maintainer on site who takes equipment in hand, and the roles above.
    ("POST",   "/api/v1/maintenance/sites/{site}/items/{item}/confirm"): Role.MAINTAINER,
    ("GET",    "/api/v1/maintenance/sites/{site}/readiness"):  Role.VIEWER,
    ("GET",    "/api/v1/maintenance/sites/{site}/report"):     Role.VIEWER,
    ("GET",    "/api/v1/maintenance/districts/{district}/report"): Role.VIEWER,
    ("GET",    "/api/v1/maintenance/areas/{code}/report"): Role.VIEWER,
    ("POST",   "/api/v1/maintenance/sweep"):         Role.MAINTAINER,
    ("GET",    "/api/v1/work-orders"):               Role.VIEWER,
    ("POST",   "/api/v1/work-orders"):               Role.MAINTAINER,
    ("GET",    "/api/v1/work-orders/{order_id}"):    Role.VIEWER,
    ("POST",   "/api/v1/work-orders/{order_id}/start"):  Role.MAINTAINER,
    ("POST",   "/api/v1/work-orders/{order_id}/close"):  Role.MAINTAINER,
    ("POST",   "/api/v1/work-orders/{order_id}/cancel"): Role.MAINTAINER,
    ("GET",    "/api/v1/exercises"):                 Role.VIEWER,
    ("GET",    "/api/v1/exercises/library"):         Role.VIEWER,
    ("GET",    "/api/v1/exercises/{exercise_id}"):   Role.VIEWER,
    ("GET",    "/api/v1/exercises/{exercise_id}/situations"): Role.VIEWER,
    ("GET",    "/api/v1/exercises/{exercise_id}/timings"):    Role.VIEWER,
    ("GET",    "/api/v1/exercises/{exercise_id}/report"):     Role.VIEWER,
    # Directing an exercise: a commander whose area covers every participating area.
    ("POST",   "/api/v1/exercises"):                 Role.COMMANDER,
    ("POST",   "/api/v1/exercises/{exercise_id}/start"):      Role.COMMANDER,
    ("POST",   "/api/v1/exercises/{exercise_id}/end"):        Role.COMMANDER,
    ("POST",   "/api/v1/exercises/{exercise_id}/situations"): Role.COMMANDER,
    # The director, or a duty officer whose area covers the site, reports a repair.
    ("POST",   "/api/v1/exercises/{exercise_id}/situations/{situation_id}/repair"):
        Role.DUTY_OFFICER,
}
# fmt: on

# Values for path parameters: well-formed, but naming nothing that exists.
PATH_VALUES: dict[str, str] = {
    "site": "shelter-99",
    "username": "no-such-user",
    "alert_id": "999999",
    "order_id": "conv-000000000000",
    "situation_id": "x.1",
}
DEFAULT_PATH_VALUE = "no-such-thing"
METHODS = {"get", "put", "post", "delete", "patch"}


def allowed_roles(access: Access) -> frozenset[Role]:
    if access == PUBLIC:
        return frozenset(Role)
    if isinstance(access, Role):
        return frozenset(r for r in ROLE_ORDER if r.at_least(access))
    assert isinstance(access, frozenset)
    return access


def example_path(path: str) -> str:
    out = path
    while "{" in out:
        start, end = out.index("{"), out.index("}")
        out = (
            out[:start] + PATH_VALUES.get(out[start + 1 : end], DEFAULT_PATH_VALUE) + out[end + 1 :]
        )
    return out


def test_the_table_is_well_formed() -> None:
    for (method, path), access in ACCESS.items():
        assert method == method.upper() and path.startswith("/"), (method, path)
        assert access == PUBLIC or allowed_roles(access), f"{method} {path}: nobody allowed"


async def test_every_route_answers_each_role_as_the_table_says(
    tmp_path: Path, database_url: str
) -> None:
    settings = control_settings(database_url, f"sqlite:///{tmp_path / 'store.db'}")
    await create_users(settings)
    async with (
        serve(settings) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=10) as client,
    ):
        spec = (await client.get("/openapi.json")).json()
        served = {
            (method.upper(), path)
            for path, item in spec["paths"].items()
            for method in item
            if method in METHODS
        }
        assert not served - ACCESS.keys(), (
            "routes without a row in ACCESS (decide who may call them): "
            f"{sorted(served - ACCESS.keys())}"
        )
        assert not ACCESS.keys() - served, (
            f"rows for routes not served: {sorted(ACCESS.keys() - served)}"
        )

        tokens = {role: await login(client, role.value, PASSWORDS[role]) for role in Role}
        wrong: list[str] = []
        for (method, path), access in sorted(ACCESS.items()):
            url = example_path(path)
            anonymous = await client.request(method, url)
            if access == PUBLIC:
                if anonymous.status_code in (401, 403):
                    wrong.append(f"{method} {path} anonymous: {anonymous.status_code}")
            elif anonymous.status_code != 401:
                wrong.append(f"{method} {path} anonymous: {anonymous.status_code}, not 401")
            allowed = allowed_roles(access)
            for role in Role:
                resp = await client.request(method, url, headers=bearer(tokens[role]))
                if role in allowed and resp.status_code in (401, 403):
                    wrong.append(f"{method} {path} as {role}: {resp.status_code}, not allowed")
                elif role not in allowed and resp.status_code != 403:
                    wrong.append(f"{method} {path} as {role}: {resp.status_code}, not 403")
                if (method, path) == ("POST", "/api/v1/auth/logout"):
                    # That call ended the session on purpose; the next route needs a new one.
                    tokens[role] = await login(client, role.value, PASSWORDS[role])
        assert not wrong, "\n".join(wrong)

    # Routes hidden from the spec (include_in_schema=False) would escape the table: every
    # route the app serves must be an operation of the spec, or a known exception.
    app = create_app(settings)
    docs = {app.openapi_url, app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url}
    operations: set[tuple[str, str]] = set()
    others: set[str] = set()
    for route, path in served_routes(app.routes):
        if isinstance(route, APIRoute):
            operations |= {(method, path) for method in route.methods or ()}
        elif path != CONSOLE and path not in docs:
            others.add(path)
    assert served <= operations, f"the walk missed routes: {served - operations}"
    assert operations <= served, f"routes missing from the OpenAPI spec: {operations - served}"
    assert others <= NOT_OPERATIONS, f"routes outside the API and this table: {others}"


# The console's pages: their own table, in tests/integration/test_console_access.py.
CONSOLE = "/console"
# Plain Starlette routes that are no operation of the API, so not in its spec: every method
# but POST of /activations/from-cap answers 405 (control/api/activations.py says why).
NOT_OPERATIONS = {"/api/v1/activations/from-cap"}


def served_routes(routes: Sequence[BaseRoute], prefix: str = "") -> list[tuple[BaseRoute, str]]:
    """Every route the app serves with its full path, walking into included routers: FastAPI
    (0.165) keeps each included router as ONE entry, its routes under ``original_router``."""
    found: list[tuple[BaseRoute, str]] = []
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            context = getattr(route, "include_context", None)
            found += served_routes(included.routes, prefix + getattr(context, "prefix", ""))
        else:
            found.append((route, prefix + str(getattr(route, "path", ""))))
    return found
