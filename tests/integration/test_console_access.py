"""Who may open which console page, and the console's locks: sign-in CSRF, redirects, headers,
escaping. The console is mounted outside the API's OpenAPI spec, so the role matrix of
test_role_matrix.py does not see it: ``PAGES`` is its own decision record, and must name every
route the console serves. ``AREA_RULES`` is the same record for command areas: each page is
opened by a user of a county, of its neighbour's parent city, and of the province.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
from area_helpers import area_user, create_area_users, import_areas
from control_helpers import (
    PASSWORDS,
    FakeGateway,
    bearer,
    control_settings,
    create_users,
    login,
    serve,
)
from fastapi.routing import APIRoute
from platform_helpers import mqtt_settings
from servers import MosquittoServer, wait_until

from control import ControlSettings
from control.alerts.records import record_event
from control.auth import ROLE_ORDER, Role
from control.console import create_console
from control.console.login import CSRF_COOKIE, CSRF_FIELD
from control.console.security import CSP
from control.db import Database
from shelterwatch.contract import Alert
from shelterwatch.store import Sample
from shelterwatch.store.sqlite import SqliteStore

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


# -- command areas ---------------------------------------------------------------------------
#
# The tree is tests/area_helpers.py: hz-xihu (site-x1, site-x2) and hz-binj (site-b1) under the
# city hz. Each console route's rule for areas, as PAGES is for roles:
# - "list": shows only what lies in the caller's area;
# - "one": a thing of the caller's area shows, a neighbour's answers 404 as an unknown one;
# - "everywhere": only for people who act in every area (403 and no menu link for others);
# - "stream": pushes only events about the caller's area;
# - "none": shows nothing placed in an area.
AREA_RULES: dict[tuple[str, str], Literal["list", "one", "everywhere", "stream", "none"]] = {
    ("GET", "/"): "none",
    ("GET", "/login"): "none",
    ("POST", "/login"): "none",
    ("GET", "/fleet"): "list",
    ("GET", "/sites/{site}"): "one",
    ("GET", "/conversions"): "list",
    ("GET", "/alerts"): "list",
    ("GET", "/sirens"): "list",
    ("GET", "/activations/{activation_id}"): "one",
    ("GET", "/work-orders"): "list",
    ("GET", "/work-orders/{order_id}"): "one",
    ("GET", "/audit"): "everywhere",
    ("GET", "/events"): "stream",
}
T0 = 1_758_160_920_000
GATEWAYS = {"site-x1": "gw-x1", "site-x2": "gw-x2", "site-b1": "gw-b1"}
# (id, site, district, name)
POSTS = [
    ("sr-x1", "site-x1", "xihu", "西湖警报一号"),
    ("sr-b1", "site-b1", "binjiang", "滨江警报一号"),
]
GROUPS = [
    {"name": "xihu-sirens", "members": ["sr-x1"]},
    {"name": "binj-sirens", "members": ["sr-b1"]},
    # Reaches into both counties: a county's dialog cannot use it, the city's can.
    {"name": "hz-sirens", "members": ["sr-x1", "sr-b1"]},
]
PLACED_USERS: list[tuple[Role, str]] = [
    (Role.VIEWER, "hz-xihu"),
    (Role.VIEWER, "hz"),
    (Role.DUTY_OFFICER, "hz-xihu"),
    (Role.DUTY_OFFICER, "hz"),
    (Role.COMMANDER, "hz-xihu"),
    (Role.COMMANDER, "zj"),
]


def test_every_console_route_has_an_area_rule() -> None:
    assert served() == set(AREA_RULES), (
        f"routes without an area rule: {sorted(served() - set(AREA_RULES))}; "
        f"rules without a route: {sorted(set(AREA_RULES) - served())}"
    )


@dataclass
class AreaRig:
    client: httpx.AsyncClient
    settings: ControlSettings
    tokens: dict[str, dict[str, str]]
    # What belongs to each of site-x1 and site-b1: ids and the words shown for them.
    seeded: dict[str, dict[str, str]] = field(default_factory=dict)

    def who(self, role: Role, area: str | None = None) -> dict[str, str]:
        return self.tokens[role.value if area is None else area_user(role, area)]

    async def post(self, path: str, body: Any, role: Role) -> dict[str, Any]:
        resp = await self.client.post(path, json=body, headers=self.who(role))
        assert resp.status_code in (201, 202), resp.text
        out: dict[str, Any] = resp.json()
        return out

    async def alert(self, site: str, rule: str, message: str) -> int:
        """An alert as the collector's engine records it."""
        async with Database(self.settings.database_url) as db:
            alert = Alert(
                active=True,
                ts=T0,
                raised_ts=T0,
                severity="major",
                kind="threshold",
                point="overpressure",
                message=message,
                value=12.0,
            )
            applied = await record_event(db, site, rule, "vent", alert, [])
            assert applied is not None
            return applied.record.id

    async def silent_test(self, *sirens: str) -> str:
        body = {"kind": "silent_test", "reason": "monthly check", "sirens": list(sirens)}
        return str((await self.post("/api/v1/activations", body, Role.DUTY_OFFICER))["id"])

    async def drill(self, site: str) -> str:
        body = {
            "kind": "drill",
            "level": "emergency",
            "shelters": [{"site": site, "gateway": GATEWAYS[site]}],
            "reason": "quarterly drill",
        }
        return str((await self.post("/api/v1/conversions", body, Role.DUTY_OFFICER))["id"])


@contextlib.asynccontextmanager
async def area_rig(tmp_path: Path, mosquitto: MosquittoServer) -> AsyncIterator[AreaRig]:
    """The sample tree, users in it, readings, an alert, a siren post and a work order at
    site-x1 and at site-b1, and groups of the posts."""
    tag = uuid.uuid4().hex[:8]
    mqtt = mqtt_settings(mosquitto.port, prefix=f"consolescope{tag}/v1")
    store_path = tmp_path / "store.db"
    async with SqliteStore(store_path) as store:
        await store.write(
            [
                Sample("ventilation", site, gw, "vent", T0 + i, {"overpressure": 42.0})
                for site, gw in GATEWAYS.items()
                for i in range(3)
            ]
        )
    settings = control_settings(
        f"sqlite:///{tmp_path / 'control.db'}",
        f"sqlite:///{store_path}",
        mqtt=mqtt,
        command_client_id=f"ctl-{tag}",
        alerts={"client_id": f"ctl-alerts-{tag}"},
    )
    await import_areas(settings)
    await create_users(settings)
    await create_area_users(settings, PLACED_USERS)
    async with (
        FakeGateway(mqtt),
        serve(settings) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as client,
    ):
        tokens = {r.value: bearer(await login(client, r.value, PASSWORDS[r])) for r in Role}
        for role, area in PLACED_USERS:
            name = area_user(role, area)
            tokens[name] = bearer(await login(client, name, PASSWORDS[role]))
        rig = AreaRig(client, settings, tokens)
        for sid, site, district, name in POSTS:
            post = {
                "id": sid,
                "name": name,
                "site": site,
                "gateway": GATEWAYS[site],
                "device": f"ctl-{sid}",
                "district": district,
                "lat": 30.25,
                "lon": 120.15,
                "radius_m": 800,
            }
            await rig.post("/api/v1/sirens", post, Role.COMMANDER)
        for group in GROUPS:
            await rig.post("/api/v1/siren-groups", group, Role.COMMANDER)
        for site, county, title in (
            ("site-x1", "西湖", "Xihu blast door check"),
            ("site-b1", "滨江", "Binjiang tank cleaning"),
        ):
            order = await rig.post(
                "/api/v1/work-orders", {"site": site, "title": title}, Role.MAINTAINER
            )
            rig.seeded[site] = {
                "alert_message": f"{county}工程超压不足 at {site}",
                "work_order": order["id"],
                "work_order_title": title,
            }
            rig.seeded[site]["alert"] = str(
                await rig.alert(site, "overpressure-low", rig.seeded[site]["alert_message"])
            )
        yield rig


# What the console must never show a user of hz-xihu: site-b1, what is placed there, and the
# county it lies in.
def _binj_words(rig: AreaRig) -> list[str]:
    b1 = rig.seeded["site-b1"]
    return [
        "site-b1",
        "gw-b1",
        "sr-b1",
        "滨江警报一号",
        "滨江一号工程",
        "hz-binj",
        "滨江区",
        "binjiang",
        "binj-sirens",
        "hz-sirens",
        b1["alert_message"],
        b1["work_order"],
        b1["work_order_title"],
        *(b1[key] for key in ("activation", "conversion") if key in b1),
    ]


def _leaks(text: str, words: list[str]) -> list[str]:
    return [w for w in words if w in text]


async def test_each_console_page_shows_only_the_callers_area(
    tmp_path: Path, mosquitto: MosquittoServer
) -> None:
    async with area_rig(tmp_path, mosquitto) as rig:
        c = rig.client
        x1, b1 = rig.seeded["site-x1"], rig.seeded["site-b1"]
        for seeded, siren, site in ((x1, "sr-x1", "site-x1"), (b1, "sr-b1", "site-b1")):
            seeded["activation"] = await rig.silent_test(siren)
            seeded["conversion"] = await rig.drill(site)
        binj = _binj_words(rig)
        xihu = rig.who(Role.VIEWER, "hz-xihu")
        city = rig.who(Role.VIEWER, "hz")

        # Every "list" and "one" route: its page, and what of site-x1 it shows.
        routes = {
            "/fleet": ("/console/fleet", ["site-x1", "西湖一号工程", "site-x2"]),
            "/alerts": ("/console/alerts?state=all", [x1["alert_message"]]),
            "/sirens": (
                "/console/sirens",
                ["sr-x1", "西湖警报一号", x1["activation"]],
            ),
            "/conversions": ("/console/conversions", [x1["conversion"], "site-x1"]),
            "/work-orders": (
                "/console/work-orders?state=all",
                [x1["work_order"], x1["work_order_title"]],
            ),
            "/sites/{site}": (
                "/console/sites/site-x1",
                ["site-x1", "西湖一号工程", x1["alert_message"]],
            ),
            "/activations/{activation_id}": (
                f"/console/activations/{x1['activation']}",
                [x1["activation"], "sr-x1"],
            ),
            "/work-orders/{order_id}": (
                f"/console/work-orders/{x1['work_order']}",
                [x1["work_order_title"]],
            ),
        }
        assert set(routes) == {p for (_, p), rule in AREA_RULES.items() if rule in ("list", "one")}
        wrong: list[str] = []
        for page, shows in routes.values():
            resp = await c.get(page, headers=xihu)
            if resp.status_code != 200:
                wrong.append(f"{page} as hz-xihu: {resp.status_code}")
                continue
            if missing := [w for w in shows if w not in resp.text]:
                wrong.append(f"{page} as hz-xihu misses {missing}")
            if leaked := _leaks(resp.text, binj):
                wrong.append(f"{page} as hz-xihu shows {leaked}")
        assert not wrong, "\n".join(wrong)
        # The test and alert dialog (for those who may start one) offers the county's sirens
        # and the groups wholly inside it, nothing else.
        dialog = await c.get("/console/sirens", headers=rig.who(Role.DUTY_OFFICER, "hz-xihu"))
        assert 'value="xihu-sirens"' in dialog.text and 'value="sr-x1"' in dialog.text
        assert not _leaks(dialog.text, binj)

        # A neighbour's thing answers exactly as one that does not exist: the console's 404.
        for neighbour, unknown in (
            ("/console/sites/site-b1", "/console/sites/site-zz"),
            (f"/console/activations/{b1['activation']}", "/console/activations/act-000000000000"),
            (f"/console/work-orders/{b1['work_order']}", "/console/work-orders/wo-000000000000"),
            ("/console/fleet?area=hz-binj", "/console/fleet?area=zz"),
            # The city above the county is not the county's to browse either.
            ("/console/fleet?area=hz", "/console/fleet?area=zz"),
        ):
            other = await c.get(neighbour, headers=xihu)
            absent = await c.get(unknown, headers=xihu)
            assert other.status_code == absent.status_code == 404, neighbour
            assert "未找到。" in other.text, neighbour
            name, unknown_name = (u.rsplit("/", 1)[-1].split("=")[-1] for u in (neighbour, unknown))
            assert other.text == absent.text.replace(unknown_name, name), neighbour
        # The chart's history (the JSON API the site view calls) is closed the same way.
        query: dict[str, str | int] = {
            "device": "vent",
            "point": "overpressure",
            "since": T0 - 1,
            "until": T0 + 10,
        }
        history = await c.get("/api/v1/sites/site-b1/history", params=query, headers=xihu)
        assert history.status_code == 404
        # Filters naming a neighbour's site find nothing rather than its things.
        for page in (
            "/console/alerts?state=all&site=site-b1",
            "/console/work-orders?site=site-b1&state=all",
        ):
            resp = await c.get(page, headers=xihu)
            assert resp.status_code == 200
            assert not _leaks(resp.text, [w for w in binj if w != "site-b1"]), page

        # The fleet's filters offer only the county's own: its area and its districts.
        fleet = (await c.get("/console/fleet", headers=xihu)).text
        assert 'value="hz-xihu"' in fleet and 'value="xihu"' in fleet
        assert 'value="hz"' not in fleet and "杭州市" not in fleet

        # The city sees both counties: each page, each thing, and its children rolled up.
        city_pages = {
            "/console/fleet": ["site-x1", "site-b1", "滨江一号工程"],
            "/console/alerts?state=all": [x1["alert_message"], b1["alert_message"]],
            "/console/sirens": ["sr-x1", "sr-b1", b1["activation"]],
            "/console/conversions": [x1["conversion"], b1["conversion"]],
            "/console/work-orders?state=all": [x1["work_order"], b1["work_order"]],
            "/console/sites/site-b1": ["site-b1", b1["alert_message"]],
            f"/console/activations/{b1['activation']}": ["sr-b1"],
            f"/console/work-orders/{b1['work_order']}": [b1["work_order_title"]],
        }
        for page, shows in city_pages.items():
            resp = await c.get(page, headers=city)
            assert resp.status_code == 200, page
            assert not [w for w in shows if w not in resp.text], (page, shows)
        dialog = await c.get("/console/sirens", headers=rig.who(Role.DUTY_OFFICER, "hz"))
        for group in ("xihu-sirens", "binj-sirens", "hz-sirens"):
            assert f'value="{group}"' in dialog.text, group
        rollup = (await c.get("/console/fleet", headers=city)).text
        assert 'data-area="hz-xihu"' in rollup and 'data-area="hz-binj"' in rollup
        assert "宁波市" not in rollup and "site-n1" not in rollup
        # Picking a county narrows the fleet to it, under a breadcrumb from the city.
        binj_fleet = (await c.get("/console/fleet?area=hz-binj", headers=city)).text
        assert 'data-site="site-b1"' in binj_fleet and 'data-site="site-x1"' not in binj_fleet
        assert 'href="/console/fleet?area=hz"' in binj_fleet

        # The audit trail is for people who act in every area.
        county_commander = rig.who(Role.COMMANDER, "hz-xihu")
        audit = await c.get("/console/audit", headers=county_commander)
        assert audit.status_code == 403
        assert 'id="area-only"' in audit.text and "sirens.read" not in audit.text
        assert not _leaks(audit.text, binj)
        menu = (await c.get("/console/fleet", headers=county_commander)).text
        assert 'href="/console/audit"' not in menu and 'href="/console/sirens"' in menu
        for everywhere in (rig.who(Role.COMMANDER, "zj"), rig.who(Role.COMMANDER)):
            assert (await c.get("/console/audit", headers=everywhere)).status_code == 200
            menu = (await c.get("/console/fleet", headers=everywhere)).text
            assert 'href="/console/audit"' in menu

        # An activation over both counties: the county sees its own siren of it, nothing of
        # the neighbour's, and is offered no decision over sirens it does not command.
        both = await rig.silent_test("sr-x1", "sr-b1")
        officer = rig.who(Role.DUTY_OFFICER, "hz-xihu")
        shared = await c.get(f"/console/activations/{both}", headers=officer)
        assert shared.status_code == 200
        assert "sr-x1" in shared.text and not _leaks(shared.text, binj)
        assert 'data-decide="cancel"' not in shared.text
        own = await c.get(f"/console/activations/{x1['activation']}", headers=officer)
        assert 'data-decide="cancel"' in own.text or 'data-final="true"' in own.text


class EventLog:
    """The events one console stream has pushed, read in the background."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, str]]] = []
        self.text = ""

    async def read(self, client: httpx.AsyncClient, headers: dict[str, str]) -> None:
        name = ""
        async with client.stream("GET", "/console/events", headers=headers) as resp:
            assert resp.status_code == 200
            async for line in resp.aiter_lines():
                self.text += line + "\n"
                if line.startswith("event: "):
                    name = line.removeprefix("event: ")
                elif line.startswith("data: ") and name:
                    self.events.append((name, json.loads(line.removeprefix("data: "))))
                    name = ""

    def saw(self, name: str, data: dict[str, str]) -> bool:
        return (name, data) in self.events


async def test_the_live_stream_tells_a_county_nothing_of_its_neighbour(
    tmp_path: Path, mosquitto: MosquittoServer
) -> None:
    async with area_rig(tmp_path, mosquitto) as rig:
        county, city = EventLog(), EventLog()
        timeout = httpx.Timeout(10, read=None)
        async with httpx.AsyncClient(base_url=str(rig.client.base_url), timeout=timeout) as sse:
            readers = [
                asyncio.create_task(county.read(sse, rig.who(Role.VIEWER, "hz-xihu"))),
                asyncio.create_task(city.read(sse, rig.who(Role.VIEWER, "hz"))),
            ]
            try:
                await wait_until(
                    lambda: "retry:" in county.text and "retry:" in city.text,
                    10,
                    "both streams open",
                )
                # At site-b1: an alert, a siren test, and a drill that moves its posture.
                await rig.alert("site-b1", "door-seal-decay", "滨江 seal pressure low")
                b1_activation = await rig.silent_test("sr-b1")
                b1_order = await rig.drill("site-b1")

                def city_saw_b1() -> bool:
                    return (
                        city.saw("alerts", {})
                        and city.saw("activation", {"id": b1_activation})
                        and city.saw("conversion", {"id": b1_order})
                        and city.saw("conversion", {"id": ""})
                    )

                await wait_until(city_saw_b1, 15, "the city's stream telling of site-b1")
                # A change at site-x1 after them: when the county hears of it, its stream has
                # read every snapshot holding site-b1's changes, and an event about them
                # would have come first (a snapshot's alerts come before its activations).
                x1_activation = await rig.silent_test("sr-x1")
                await wait_until(
                    lambda: county.saw("activation", {"id": x1_activation}),
                    15,
                    "the county's stream telling of its own siren test",
                )
                barrier = county.events.index(("activation", {"id": x1_activation}))
                assert county.events[:barrier] == [], county.events
                # An alert of its own reaches the county as it always did.
                await rig.alert("site-x1", "door-seal-decay", "西湖 seal pressure low")
                await wait_until(
                    lambda: county.saw("alerts", {}), 15, "the county's stream telling of its alert"
                )
                assert city.saw("activation", {"id": x1_activation})
            finally:
                for reader in readers:
                    reader.cancel()
                await asyncio.gather(*readers, return_exceptions=True)
        allowed = {("activation", x1_activation), ("alerts", None)}
        assert {(n, d.get("id")) for n, d in county.events} <= allowed, county.events
        assert b1_activation not in county.text and b1_order not in county.text
