"""Where each route may be called: every route of the live API, by a user in scope, a user out
of scope and a user of the parent area, against ONE table (SQLite and PostgreSQL).

``AREA`` is the decision record for command areas, as ``ACCESS`` in test_role_matrix.py is for
roles: each (METHOD, path) of the served OpenAPI spec must have a row, and each row must name a
served route, so a new route cannot ship without someone deciding how areas bound it.

The tree is tests/area_helpers.py. Everything is seeded at site-x1 / gw-x1, in the county
hz-xihu, by an admin with no area (through the API; the alerts and the readings, which the
collector writes, through the database and the store). Three admins then call every route; all
hold the same role, so only their area can decide the answer:

- IN, an admin of hz-xihu (the county of the seed);
- OUT, an admin of hz-binj, the neighbouring county under the same city;
- PARENT, an admin of hz, the city over both.

A row's class:

- ``GLOBAL``: not placed in any area; all three get the same answer (the row says why);
- ``EVERYWHERE``: only for people who act in every area; IN, OUT and PARENT all get 403;
- ``READ``: IN and PARENT get 2xx naming what was seeded; OUT gets 403 or 404, or, for a list
  (``LISTED``), 200 without a trace of the seed;
- ``ACTION``: OUT, with a body that is valid for its own area, is refused (403 or 404, unless
  the row says otherwise and why) and changes nothing, as the unscoped admin reads it before
  and after; IN and PARENT are served (the row names any answer besides 2xx).

OUT calls first, so that everything it must leave alone is still there; PARENT then IN. A route
that uses its target up (approve, reject, cancel, delete, start, repair) gets a fresh one per
caller (``fresh``). Whatever OUT reads must not name the seed (site-x1, gw-x1, the county, the
seeded ids) unless its own request named it. Every wrong answer is collected, and the test
fails once at the end with the whole list.
"""

from __future__ import annotations

import enum
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from area_helpers import AREAS_YAML, area_user, create_area_users, import_areas
from control_helpers import PASSWORDS, bearer, control_settings, create_users, login, serve
from platform_helpers import mqtt_settings
from servers import MosquittoServer, wait_until

from control import ControlSettings
from control.alerts.records import record_event
from control.auth import Role
from control.cap import Area, CapSender, Circle, SirenAlert, build_alert
from control.db import Database
from shelterwatch.contract import Alert, SirenKind
from shelterwatch.signals import builtin_signals
from shelterwatch.store import Sample
from shelterwatch.store.sqlite import SqliteStore

pytestmark = pytest.mark.integration

METHODS = {"get", "put", "post", "delete", "patch"}
ADMIN = Role.ADMIN.value  # the unscoped admin (no area: every area) who seeds and witnesses


class Caller(enum.Enum):
    """The three users, by their area."""

    OUT = "hz-binj"
    PARENT = "hz"
    IN = "hz-xihu"

    @property
    def username(self) -> str:
        return area_user(Role.ADMIN, self.value)

    @property
    def short(self) -> str:
        return self.name.lower()


# OUT first: what it must not change is still there when it calls. PARENT before IN.
CALLERS = (Caller.OUT, Caller.PARENT, Caller.IN)

# What OUT must never read unless its own request named it: the seed's site, gateway, county
# (and its district and the names made in it, which all carry "xihu"), its siren posts, and
# the county's other shelter. The seeded ids with no such word are added as they are made.
TRACES = ("site-x1", "gw-x1", "site-x2", "gw-x2", "xihu", "sr-x1", "西湖")

SUCCESS = frozenset({200, 201, 202, 204})
REFUSED = frozenset({403, 404})
# A list leaves out what lies outside the caller's area: OUT gets 200 and no trace of it.
LISTED = frozenset({200})


class Kind(enum.Enum):
    GLOBAL = "global"
    EVERYWHERE = "everywhere only"
    READ = "placed read"
    ACTION = "placed action"


# The values of one call: the seed's names (``Rig.seed``), each path parameter filled from
# them, and what ``fresh`` made for the caller.
Values = Mapping[str, str]
Body = Callable[[Caller, Values], Any]
Fresh = Callable[["Rig", Caller], Awaitable[dict[str, str]]]
Witness = Callable[["Rig", Values], Awaitable[object]]


@dataclass(frozen=True)
class Row:
    kind: Kind
    # Path parameter -> the seed's key that fills it (default: the parameter's own name).
    args: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    body: Body | None = None
    # Seed keys whose values IN's and PARENT's answers to a read must contain.
    shows: tuple[str, ...] = ()
    # Makes what the call uses up, once per caller; returns path values.
    fresh: Fresh | None = None
    # What the unscoped admin reads of the target: a refused call must leave it unchanged.
    witness: Witness | None = None
    # OUT's answer to a READ or an ACTION.
    out: frozenset[int] = REFUSED
    # IN's and PARENT's answer (and, for GLOBAL, OUT's too).
    ok: frozenset[int] = SUCCESS
    # GLOBAL reads: the three answers are the same bytes, not only the same status.
    same_body: bool = False


@dataclass
class Rig:
    client: httpx.AsyncClient
    settings: ControlSettings
    tag: str
    tokens: dict[str, dict[str, str]] = field(default_factory=dict)
    seed: dict[str, str] = field(default_factory=dict)
    traces: set[str] = field(default_factory=lambda: set(TRACES))

    def headers(self, who: Caller | None) -> dict[str, str]:
        return self.tokens[ADMIN if who is None else who.username]

    async def ok(self, method: str, url: str, body: Any = None, **params: str) -> Any:
        """A call as the unscoped admin, which must succeed (seeding and fresh targets)."""
        resp = await self.client.request(
            method, url, json=body, params=params or None, headers=self.headers(None)
        )
        assert resp.status_code in SUCCESS, (method, url, resp.status_code, resp.text)
        return resp.json() if resp.content else None

    def made(self, thing: Any, key: str = "id") -> str:
        """Keep the id of something seeded: OUT must never read it."""
        made: str = thing[key]
        self.traces.add(made)
        return made


# -- bodies, fresh targets and witnesses ---------------------------------------------------------


def same(body: Any) -> Body:
    return lambda _caller, _values: body


def now_ms() -> int:
    return time.time_ns() // 1_000_000


SIREN = {
    "name": "西湖警报一号",
    "site": "site-x1",
    "gateway": "gw-x1",
    "device": "siren",
    "district": "xihu",
    "lat": 30.25,
    "lon": 120.15,
    "radius_m": 800,
}
SILENT = {"kind": "silent_test", "sirens": ["sr-x1"], "reason": "monthly check"}
LIVE = {"kind": "live", "signal": "air_raid", "sirens": ["sr-x1"], "reason": "air raid reported"}
WEEKLY = {
    "rule": "FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0",
    "sirens": ["sr-x1"],
    "programme": [{"kind": "silent_test"}],
}
UPSTREAM = CapSender("province@example.cn", "省人民防空办公室", "Provincial Civil Air Defence")
SHANGHAI = ZoneInfo("Asia/Shanghai")


def siren_at_x1(sid: str, device: str) -> dict[str, Any]:
    # Away from sr-x1, so an upstream CAP circle around sr-x1 matches sr-x1 alone.
    return SIREN | {"id": sid, "device": device, "lat": 30.6, "lon": 120.6}


def shelter_x2(kind: str) -> dict[str, Any]:
    # A shelter takes one open order at a time: site-x1 holds the seeded drill, so the orders
    # made per caller go to site-x2, the county's other shelter.
    return {
        "kind": kind,
        "level": "emergency",
        "shelters": [{"site": "site-x2", "gateway": "gw-x2"}],
        "reason": "area matrix",
    }


def exercise(eid: str, director: str) -> dict[str, Any]:
    start = now_ms()
    return {
        "id": eid,
        "name": "西湖区演习",
        "areas": ["hz-xihu"],
        "director": director,
        "planned_start_ms": start,
        "planned_end_ms": start + 3_600_000,
    }


def upstream_cap(caller: Caller, values: Values) -> dict[str, str]:
    """An upstream authority's live alert over sr-x1 (a circle around it), new per caller."""
    xml = build_alert(
        SirenAlert(
            identifier=f"up-{caller.short}-{values['tag']}",
            sender=UPSTREAM,
            sent=datetime.now(SHANGHAI).replace(microsecond=0),
            activation="province-1",
            kind=SirenKind.LIVE,
            signal=builtin_signals()["air_raid"],
            areas=(Area("西湖", circles=(Circle(30.25, 120.15, 0.2),)),),
        )
    )
    return {"xml": xml.decode()}


async def free_x2(rig: Rig, _caller: Caller | None = None) -> dict[str, str]:
    """site-x2 without an open order, so the next one may be requested there."""
    for order in await rig.ok("GET", "/api/v1/conversions", site="site-x2"):
        if order["state"] in ("running", "pending_approval"):
            path = f"/api/v1/conversions/{order['id']}/cancel"
            await rig.ok("POST", path, {"comment": "the next caller's turn"})
    return {}


async def fresh_real_order(rig: Rig, caller: Caller) -> dict[str, str]:
    await free_x2(rig)
    order = await rig.ok("POST", "/api/v1/conversions", shelter_x2("real"))
    return {"order_id": rig.made(order)}


async def fresh_drill_order(rig: Rig, caller: Caller) -> dict[str, str]:
    await free_x2(rig)
    order = await rig.ok("POST", "/api/v1/conversions", shelter_x2("drill"))
    return {"order_id": rig.made(order)}


async def fresh_live(rig: Rig, caller: Caller) -> dict[str, str]:
    # Requested by the unscoped admin, so that the two-person rule never decides.
    return {"activation_id": rig.made(await rig.ok("POST", "/api/v1/activations", LIVE))}


async def fresh_siren(rig: Rig, caller: Caller) -> dict[str, str]:
    sid = f"sr-x1-del-{caller.short}"
    await rig.ok("POST", "/api/v1/sirens", siren_at_x1(sid, f"del-{caller.short}"))
    return {"siren_id": sid}


async def fresh_group(rig: Rig, caller: Caller) -> dict[str, str]:
    name = f"xihu-del-{caller.short}"
    await rig.ok("POST", "/api/v1/siren-groups", {"name": name, "members": ["sr-x1"]})
    return {"group": name}


async def fresh_schedule(rig: Rig, caller: Caller) -> dict[str, str]:
    name = f"xihu-del-{caller.short}"
    await rig.ok("POST", "/api/v1/schedules", WEEKLY | {"name": name})
    return {"name": name}


async def fresh_alert(rig: Rig, caller: Caller) -> dict[str, str]:
    alert_id = await raise_alert(rig.settings, f"ack-{caller.short}")
    return {"alert_id": str(alert_id)}


async def fresh_work_order(rig: Rig, caller: Caller) -> dict[str, str]:
    order = await rig.ok(
        "POST", "/api/v1/work-orders", {"site": "site-x1", "title": f"fan check {caller.short}"}
    )
    return {"order_id": rig.made(order)}


def _director(caller: Caller) -> str:
    # Only the director directs, and a director's area covers the exercise's: IN and PARENT
    # direct their own; OUT cannot direct one over hz-xihu, so the unscoped admin directs it.
    return ADMIN if caller is Caller.OUT else caller.username


async def fresh_exercise(rig: Rig, caller: Caller) -> dict[str, str]:
    eid = f"xihu-{caller.short}-{uuid.uuid4().hex[:8]}"
    await rig.ok("POST", "/api/v1/exercises", exercise(eid, _director(caller)))
    return {"exercise_id": eid}


async def fresh_running_exercise(rig: Rig, caller: Caller) -> dict[str, str]:
    made = await fresh_exercise(rig, caller)
    director = rig.tokens[_director(caller)]
    start = await rig.client.post(
        f"/api/v1/exercises/{made['exercise_id']}/start", headers=director
    )
    assert start.status_code == 200, start.text
    return made


async def fresh_situation(rig: Rig, caller: Caller) -> dict[str, str]:
    path = f"/api/v1/exercises/{rig.seed['exercise_id']}/situations"
    [situation] = await rig.ok("POST", path, {"kind": "filter_clog", "site": "site-x1"})
    return {"situation_id": rig.made(situation)}


def fill(path: str, values: Values) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


def _project(data: Any, keys: tuple[str, ...]) -> Any:
    if not keys:
        return data
    if isinstance(data, list):
        return [_project(item, keys) for item in data]
    if isinstance(data, dict):
        return {k: data.get(k) for k in keys}
    return data


def seen(path: str, *keys: str, **query: str) -> Witness:
    """What the unscoped admin reads at ``path``, cut to ``keys`` (of the answer, or of each
    item of a list): the fields a refused call must leave as they were."""

    async def read(rig: Rig, values: Values) -> object:
        resp = await rig.client.get(
            fill(path, values), params=query or None, headers=rig.headers(None)
        )
        data = resp.json() if "json" in resp.headers.get("content-type", "") else resp.text
        return resp.status_code, _project(data, keys)

    return read


def both(*witnesses: Witness) -> Witness:
    async def read(rig: Rig, values: Values) -> object:
        return [await w(rig, values) for w in witnesses]

    return read


def step(name: str) -> Witness:
    """Who confirmed a step of the seeded drill's shelter at site-x1."""

    async def read(rig: Rig, values: Values) -> object:
        order = await rig.ok("GET", fill("/api/v1/conversions/{order_id}", values))
        [target] = [t for t in order["targets"] if t["site"] == "site-x1"]
        [row] = [s for s in target["steps"] if s["step"] == name]
        return row["confirmed_by"], row["note"]

    return read


async def item_done(rig: Rig, values: Values) -> object:
    """The completions of the programme item at the site."""
    items = (await rig.ok("GET", fill("/api/v1/maintenance/sites/{site}", values)))["items"]
    return [i["done_in_period"] for i in items if i["item"] == values["item"]]


USERS = seen("/api/v1/users", "username", "role", "active", "area", "password_changed_ms")
ACTIVATIONS = seen("/api/v1/activations", "id")
SIRENS = seen("/api/v1/sirens", "id", "site", "gateway", "radius_m", "name")
GROUPS = seen("/api/v1/siren-groups", "name", "members", "description")
SCHEDULE = seen("/api/v1/schedules/{name}", "title", "enabled", "rule", "sirens", "revision")
EXERCISE = seen("/api/v1/exercises/{exercise_id}", "state", "situations")
WORK_ORDER = seen("/api/v1/work-orders/{order_id}", "state", "assignee", "closed_by")


def _row(kind: Kind, **kw: Any) -> Row:
    return Row(kind, **kw)


def glob(**kw: Any) -> Row:
    return _row(Kind.GLOBAL, **kw)


def everywhere(**kw: Any) -> Row:
    return _row(Kind.EVERYWHERE, **kw)


def read(*shows: str, **kw: Any) -> Row:
    return _row(Kind.READ, shows=shows or ("site",), **kw)


def listed(*shows: str, **kw: Any) -> Row:
    return _row(Kind.READ, shows=shows or ("site",), out=LISTED, **kw)


def action(witness: Witness, **kw: Any) -> Row:
    return _row(Kind.ACTION, witness=witness, **kw)


# fmt: off
AREA: dict[tuple[str, str], Row] = {
    # The service's liveness: nothing placed.
    ("GET",  "/api/v1/health"):                      glob(same_body=True),
    # Signing in and out, and who I am: a person, not a thing placed in an area.
    ("POST", "/api/v1/auth/login"):                  glob(body=lambda c, _v: {
                                                         "username": c.username,
                                                         "password": PASSWORDS[Role.ADMIN]}),
    ("POST", "/api/v1/auth/logout"):                 glob(),
    ("GET",  "/api/v1/auth/me"):                     glob(),

    # A user placed in hz-xihu, managed by admins of the areas over them.
    ("GET",  "/api/v1/users"):                       listed("username"),
    # OUT's answer is 422, not 403/404: an area outside the admin's part of the tree is an
    # unknown area in the body, in the very words of one that does not exist (users.py,
    # test_areas_api.py), and nothing is made.
    ("POST", "/api/v1/users"):                       action(USERS, out=frozenset({422}),
                                                         body=lambda c, v: {
                                                             "username": f"new.{c.short}.xihu",
                                                             "role": "viewer",
                                                             "password": "a-long-pass-w0rd",
                                                             "area": "hz-xihu"}),
    ("PUT",  "/api/v1/users/{username}/role"):       action(USERS, body=lambda c, _v: {
                                                         "role": {Caller.OUT: "commander",
                                                                  Caller.PARENT: "maintainer",
                                                                  Caller.IN: "duty_officer"}[c]}),
    ("PUT",  "/api/v1/users/{username}/password"):   action(USERS, body=same(
                                                         {"password": "another-pass-w0rd"})),
    ("POST", "/api/v1/users/{username}/disable"):    action(USERS),
    # After disable, so the placed user ends enabled.
    ("POST", "/api/v1/users/{username}/enable"):     action(USERS),
    # OUT would move them into its own county; IN and PARENT keep them where they are.
    ("PUT",  "/api/v1/users/{username}/area"):       action(USERS, body=lambda c, _v: {
                                                         "area": "hz-binj" if c is Caller.OUT
                                                         else "hz-xihu"}),

    # The tree: each sees its own part and the path above it, never a sibling.
    ("GET",  "/api/v1/areas"):                       listed(),
    ("GET",  "/api/v1/areas/export"):                listed(query={"format": "yaml"}),
    ("GET",  "/api/v1/areas/{code}"):                read(),
    ("GET",  "/api/v1/areas/{code}/summary"):        read(),
    # A county admin must not redraw the province.
    ("PUT",  "/api/v1/areas"):                       everywhere(
                                                         witness=seen("/api/v1/areas", "revision"),
                                                         body=same({"format": "yaml",
                                                                    "content": AREAS_YAML})),

    ("GET",  "/api/v1/sites"):                       listed(),
    ("GET",  "/api/v1/sites/{site}/latest"):         read(),
    ("GET",  "/api/v1/sites/{site}/history"):        read(query={"device": "vent",
                                                                 "point": "overpressure",
                                                                 "since": "0"}),

    ("POST", "/api/v1/commands"):                    action(
                                                         seen("/api/v1/commands", "id",
                                                              gateway="gw-x1"),
                                                         body=same({"gateway": "gw-x1",
                                                                    "device": "vent",
                                                                    "action": "ping",
                                                                    "ttl_s": 60})),
    ("GET",  "/api/v1/commands"):                    listed("command_id"),
    ("GET",  "/api/v1/commands/{command_id}"):       read("command_id", "gateway"),

    ("GET",  "/api/v1/alerts"):                      listed(query={"state": "all"}),
    ("GET",  "/api/v1/alerts/{alert_id}"):           read(),
    ("POST", "/api/v1/alerts/{alert_id}/ack"):       action(
                                                         seen("/api/v1/alerts/{alert_id}",
                                                              "acknowledged", "acked_by"),
                                                         fresh=fresh_alert,
                                                         body=same({"comment": "on it"})),

    # The trail's rows are not placed in areas, and verifying the chain needs every row.
    ("GET",  "/api/v1/audit"):                       everywhere(),
    ("GET",  "/api/v1/audit/verify"):                everywhere(),
    ("GET",  "/api/v1/audit/export"):                everywhere(),

    # A schedule belongs to the area that holds all its sirens.
    ("GET",    "/api/v1/schedules"):                 listed("name"),
    # OUT's answer is 422: a siren outside the area is an unknown siren, reported as a
    # problem of the body as for one that does not exist (test_area_scope_sirens.py).
    ("POST",   "/api/v1/schedules"):                 action(
                                                         seen("/api/v1/schedules", "name"),
                                                         out=frozenset({422}),
                                                         body=lambda c, _v: WEEKLY | {
                                                             "name": f"xihu-{c.short}"}),
    # A preview saves nothing and answers 200 with the body's problems: for OUT, sr-x1 is
    # an unknown siren, with no word of where it stands.
    ("POST",   "/api/v1/schedules/preview"):         action(
                                                         seen("/api/v1/schedules", "name"),
                                                         out=LISTED,
                                                         body=same(WEEKLY | {
                                                             "name": "xihu-preview"})),
    ("GET",    "/api/v1/schedules/{name}"):          read("name", "siren_id"),
    ("PUT",    "/api/v1/schedules/{name}"):          action(SCHEDULE, body=lambda c, _v: WEEKLY
                                                         | {"title": f"weekly ({c.short})"}),
    ("DELETE", "/api/v1/schedules/{name}"):          action(SCHEDULE, fresh=fresh_schedule),
    ("POST",   "/api/v1/schedules/{name}/enable"):   action(SCHEDULE),
    ("POST",   "/api/v1/schedules/{name}/disable"):  action(SCHEDULE),
    # No run has fired in the test (the rule's next run is next Monday): the answer is an
    # empty list for whoever may see the schedule, and 404 for OUT.
    ("GET",    "/api/v1/schedules/{name}/runs"):     _row(Kind.READ),
    # Built-in programmes, named in schedules: no siren, no area.
    ("GET",    "/api/v1/schedule-templates"):        glob(same_body=True),

    ("GET",    "/api/v1/sirens"):                    listed("siren_id"),
    ("POST",   "/api/v1/sirens"):                    action(SIRENS, body=lambda c, _v:
                                                         siren_at_x1(f"sr-x1-{c.short}",
                                                                     f"new-{c.short}")),
    ("GET",    "/api/v1/sirens/export"):             listed("siren_id", query={"format": "yaml"}),
    ("POST",   "/api/v1/sirens/import"):             action(SIRENS, body=lambda c, _v: {
                                                         "format": "yaml",
                                                         "content": "sirens:\n  - {id: sr-x1-imp-"
                                                         f"{c.short}, name: imp, site: site-x1, "
                                                         f"gateway: gw-x1, device: imp-{c.short},"
                                                         " lat: 30.6, lon: 120.6, radius_m: 500}"
                                                         "\n"}),
    ("GET",    "/api/v1/sirens/{siren_id}"):         read("siren_id"),
    ("PUT",    "/api/v1/sirens/{siren_id}"):         action(SIRENS, body=lambda c, _v: SIREN | {
                                                         "radius_m": {Caller.OUT: 1,
                                                                      Caller.PARENT: 900,
                                                                      Caller.IN: 800}[c]}),
    ("DELETE", "/api/v1/sirens/{siren_id}"):         action(SIRENS, fresh=fresh_siren),
    ("GET",    "/api/v1/siren-groups"):              listed("group"),
    # By the seeded post's district, not its id: a member OUT cannot see is unknown to it
    # before anything else is looked at, while a district reaches the posts behind it.
    # OUT's answer is 422, the words a district with no siren anywhere gets.
    ("POST",   "/api/v1/siren-groups"):              action(GROUPS, out=frozenset({422}),
                                                         body=lambda c, _v: {
                                                         "name": f"xihu-{c.short}",
                                                         "districts": ["xihu"]}),
    ("GET",    "/api/v1/siren-groups/{group}"):      read("group", "siren_id"),
    ("PUT",    "/api/v1/siren-groups/{group}"):      action(GROUPS, body=lambda c, _v: {
                                                         "members": ["sr-x1"],
                                                         "description": f"by {c.short}"}),
    ("DELETE", "/api/v1/siren-groups/{group}"):      action(GROUPS, fresh=fresh_group),
    # The signal catalogue: sounds, not places.
    ("GET",    "/api/v1/signals"):                   glob(same_body=True),
    ("GET",    "/api/v1/signals/{name}"):            glob(same_body=True, args={"name": "signal"}),

    ("POST",   "/api/v1/activations"):               action(ACTIVATIONS, body=same(SILENT)),
    ("POST",   "/api/v1/activation-previews"):       action(ACTIVATIONS, body=same(SILENT)),
    ("GET",    "/api/v1/activations"):               listed("activation_id", "siren_id"),
    # OUT's answer is 422, the words of a message that reaches no siren at all.
    ("POST",   "/api/v1/activations/from-cap"):      action(
                                                         out=frozenset({422}),
                                                         witness=both(ACTIVATIONS,
                                                              seen("/api/v1/cap", "identifier",
                                                                   direction="in")),
                                                         body=upstream_cap),
    ("GET",    "/api/v1/activations/{activation_id}"):         read("activation_id",
                                                                    "siren_id"),
    ("POST",   "/api/v1/activations/{activation_id}/approve"): action(
                                                         seen("/api/v1/activations/"
                                                              "{activation_id}", "approved_by"),
                                                         fresh=fresh_live,
                                                         body=same({"comment": "confirmed"})),
    ("POST",   "/api/v1/activations/{activation_id}/reject"):  action(
                                                         seen("/api/v1/activations/"
                                                              "{activation_id}", "approved_by"),
                                                         fresh=fresh_live,
                                                         body=same({"comment": "not real"})),
    ("POST",   "/api/v1/activations/{activation_id}/cancel"):  action(
                                                         seen("/api/v1/activations/"
                                                              "{activation_id}", "cancelled_by"),
                                                         fresh=fresh_live,
                                                         body=same({"comment": "withdrawn"})),
    ("GET",    "/api/v1/activations/{activation_id}/report"):  read("activation_id",
                                                                    "siren_id"),
    # An activation OUT does not see has no messages for it, as one that does not exist.
    ("GET",    "/api/v1/activations/{activation_id}/cap"):     listed("identifier"),
    ("GET",    "/api/v1/cap"):                       listed("identifier"),
    ("GET",    "/api/v1/cap/{identifier}"):          read("identifier"),

    # The plans are the procedure, the same for every shelter (a site names which it runs).
    ("GET",    "/api/v1/conversion-plans"):          glob(same_body=True),
    ("GET",    "/api/v1/conversion-plans/{name}"):   glob(same_body=True, args={"name": "plan"}),
    ("POST",   "/api/v1/conversions"):               action(
                                                         seen("/api/v1/conversions", "id",
                                                              site="site-x2"),
                                                         fresh=free_x2,
                                                         body=same(shelter_x2("drill"))),
    ("GET",    "/api/v1/conversions"):               listed("conversion"),
    ("GET",    "/api/v1/conversions/{order_id}"):    read("conversion",
                                                          args={"order_id": "conversion"}),
    ("POST",   "/api/v1/conversions/{order_id}/approve"): action(
                                                         seen("/api/v1/conversions/{order_id}",
                                                              "state", "approved_by"),
                                                         fresh=fresh_real_order,
                                                         body=same({"comment": "go"})),
    # Three manual steps wait at once: each caller confirms its own.
    ("POST",   "/api/v1/conversions/{order_id}/confirm"): action(
                                                         step("refit-door-sills"),
                                                         args={"order_id": "conversion"},
                                                         body=lambda c, _v: {
                                                             "site": "site-x1",
                                                             "step": {
                                                                 Caller.OUT: "refit-door-sills",
                                                                 Caller.PARENT:
                                                                     "remove-peacetime-equipment",
                                                                 Caller.IN:
                                                                     "install-blocking-plates",
                                                             }[c],
                                                             "note": f"done ({c.short})"}),
    ("POST",   "/api/v1/conversions/{order_id}/cancel"):  action(
                                                         seen("/api/v1/conversions/{order_id}",
                                                              "state", "cancelled_by"),
                                                         fresh=fresh_drill_order,
                                                         body=same({"comment": "stand down"})),
    ("GET",    "/api/v1/conversions/{order_id}/report"):  read("conversion",
                                                               args={"order_id": "conversion"}),

    # The programme is the region's standard: periods per equipment type, no site.
    ("GET",    "/api/v1/maintenance/programme"):     glob(same_body=True),
    ("GET",    "/api/v1/maintenance/sites/{site}"):  read("item"),
    ("POST",   "/api/v1/maintenance/sites/{site}/items/{item}/confirm"): action(
                                                         item_done,
                                                         # Apart, so no two land on one ms.
                                                         body=lambda c, _v: {
                                                             "note": f"cycled ({c.short})",
                                                             "done_ms": now_ms() - 1000 * (
                                                                 CALLERS.index(c) + 1)}),
    ("GET",    "/api/v1/maintenance/sites/{site}/readiness"): read(),
    ("GET",    "/api/v1/maintenance/sites/{site}/report"):    read(),
    ("GET",    "/api/v1/maintenance/districts/{district}/report"): read(),
    ("GET",    "/api/v1/maintenance/areas/{code}/report"): read(),
    # The sweep covers every site of every area.
    ("POST",   "/api/v1/maintenance/sweep"):         everywhere(
                                                         witness=seen("/api/v1/work-orders",
                                                                      "id")),
    ("GET",    "/api/v1/work-orders"):               listed("work_order"),
    ("POST",   "/api/v1/work-orders"):               action(
                                                         seen("/api/v1/work-orders", "id"),
                                                         body=lambda c, _v: {
                                                             "site": "site-x1",
                                                             "title": f"fan check {c.short}"}),
    ("GET",    "/api/v1/work-orders/{order_id}"):    read("work_order",
                                                          args={"order_id": "work_order"}),
    ("POST",   "/api/v1/work-orders/{order_id}/start"):  action(WORK_ORDER,
                                                              fresh=fresh_work_order,
                                                              body=same({"assignee": "wang"})),
    ("POST",   "/api/v1/work-orders/{order_id}/close"):  action(WORK_ORDER,
                                                              fresh=fresh_work_order,
                                                              body=same({"note": "fixed"})),
    ("POST",   "/api/v1/work-orders/{order_id}/cancel"): action(WORK_ORDER,
                                                              fresh=fresh_work_order,
                                                              body=same({"note": "not needed"})),

    # The kinds of situation a director can inject: a catalogue, not a place.
    ("GET",    "/api/v1/exercises/library"):         glob(same_body=True),
    ("GET",    "/api/v1/exercises"):                 listed("exercise_id"),
    ("POST",   "/api/v1/exercises"):                 action(
                                                         seen("/api/v1/exercises", "id"),
                                                         body=lambda c, v: exercise(
                                                             f"xihu-new-{c.short}-{v['tag']}",
                                                             c.username)),
    ("GET",    "/api/v1/exercises/{exercise_id}"):   read("exercise_id"),
    # Directing is the director's: IN and PARENT each direct one of their own (fresh).
    ("POST",   "/api/v1/exercises/{exercise_id}/start"):      action(EXERCISE,
                                                                  fresh=fresh_exercise),
    ("POST",   "/api/v1/exercises/{exercise_id}/end"):        action(
                                                                  EXERCISE,
                                                                  fresh=fresh_running_exercise),
    ("POST",   "/api/v1/exercises/{exercise_id}/situations"): action(
                                                                  EXERCISE,
                                                                  fresh=fresh_running_exercise,
                                                                  body=same({
                                                                      "kind": "door_jam",
                                                                      "site": "site-x1"})),
    ("GET",    "/api/v1/exercises/{exercise_id}/situations"): read("situation_id"),
    ("POST",   "/api/v1/exercises/{exercise_id}/situations/{situation_id}/repair"): action(
                                                         seen("/api/v1/exercises/{exercise_id}"
                                                              "/situations", "id", "repaired_by"),
                                                         fresh=fresh_situation),
    ("GET",    "/api/v1/exercises/{exercise_id}/timings"):    read("situation_id"),
    ("GET",    "/api/v1/exercises/{exercise_id}/report"):     read("situation_id"),
}
# fmt: on


def test_the_table_is_well_formed() -> None:
    for (method, path), row in AREA.items():
        assert method == method.upper() and path.startswith("/"), (method, path)
        if row.kind is Kind.READ:
            assert method == "GET", f"{method} {path}: a read is a GET"
        if row.kind is Kind.ACTION:
            assert method != "GET" and row.witness is not None, f"{method} {path}"


# -- the rig ----------------------------------------------------------------------------------


async def raise_alert(settings: ControlSettings, rule: str) -> int:
    """An alert at site-x1, recorded as the collector's engine records one."""
    ts = now_ms()
    alert = Alert(
        active=True,
        ts=ts,
        raised_ts=ts,
        severity="major",
        kind="threshold",
        point="overpressure",
        message="overpressure low at site-x1",
        value=12.0,
    )
    async with Database(settings.database_url) as db:
        applied = await record_event(db, "site-x1", rule, "vent", alert, [])
    assert applied is not None
    return applied.record.id


async def readings(path: Path) -> None:
    t0 = now_ms() - 60_000
    async with SqliteStore(path) as store:
        await store.write(
            [
                Sample("ventilation", "site-x1", "gw-x1", "vent", t0 + i, {"overpressure": 50.0})
                for i in range(3)
            ]
        )


async def seed(rig: Rig) -> None:
    """One thing of every kind at site-x1 / gw-x1, as the unscoped admin."""
    s = rig.seed
    s.update(
        tag=rig.tag,
        site="site-x1",
        gateway="gw-x1",
        code="hz-xihu",
        district="xihu",
        siren_id="sr-x1",
        group="xihu-grp",
        name="xihu-weekly",
        username="duty.xihu",
        item="door-cycle",
        signal="air_raid",
    )
    await rig.ok(
        "POST",
        "/api/v1/users",
        {
            "username": "duty.xihu",
            "role": "duty_officer",
            "password": "a-long-pass-w0rd",
            "area": "hz-xihu",
        },
    )
    await rig.ok("POST", "/api/v1/sirens", SIREN | {"id": "sr-x1"})
    await rig.ok("POST", "/api/v1/siren-groups", {"name": "xihu-grp", "members": ["sr-x1"]})
    s["silent"] = rig.made(await rig.ok("POST", "/api/v1/activations", SILENT))
    drill = {"kind": "drill", "signal": "air_raid", "sirens": ["sr-x1"], "reason": "drill"}
    s["activation_id"] = rig.made(await rig.ok("POST", "/api/v1/activations", drill))

    async def cap_published() -> bool:
        found = await rig.ok("GET", "/api/v1/cap", activation=s["activation_id"])
        return bool(found)

    await wait_until(cap_published, 10, "the drill's CAP message")
    [cap] = await rig.ok("GET", "/api/v1/cap", activation=s["activation_id"])
    s["identifier"] = rig.made(cap, "identifier")
    await rig.ok("POST", "/api/v1/schedules", WEEKLY | {"name": "xihu-weekly"})
    command = {"gateway": "gw-x1", "device": "vent", "action": "ping", "ttl_s": 60}
    s["command_id"] = rig.made(await rig.ok("POST", "/api/v1/commands", command))
    s["alert_id"] = str(await raise_alert(rig.settings, "overpressure-low"))
    order = {
        "kind": "drill",
        "level": "emergency",
        "shelters": [{"site": "site-x1", "gateway": "gw-x1"}],
        "reason": "area matrix",
    }
    s["conversion"] = rig.made(await rig.ok("POST", "/api/v1/conversions", order))

    async def manual_steps_wait() -> bool:
        got = await rig.ok("GET", f"/api/v1/conversions/{s['conversion']}")
        states = {st["step"]: st["state"] for st in got["targets"][0]["steps"]}
        manual = ("remove-peacetime-equipment", "install-blocking-plates", "refit-door-sills")
        return all(states[name] == "active" for name in manual)

    await wait_until(manual_steps_wait, 10, "the drill's manual steps waiting for a person")
    work = {"site": "site-x1", "title": "fan check"}
    s["work_order"] = rig.made(await rig.ok("POST", "/api/v1/work-orders", work))
    s["exercise_id"] = f"xihu-{rig.tag}"
    await rig.ok("POST", "/api/v1/exercises", exercise(s["exercise_id"], ADMIN))
    await rig.ok("POST", f"/api/v1/exercises/{s['exercise_id']}/start")
    [situation] = await rig.ok(
        "POST",
        f"/api/v1/exercises/{s['exercise_id']}/situations",
        {"kind": "door_jam", "site": "site-x1"},
    )
    s["situation_id"] = rig.made(situation)
    s["plan"] = (await rig.ok("GET", "/api/v1/conversion-plans"))[0]["name"]


@pytest.fixture
async def rig(tmp_path: Path, database_url: str, mosquitto: MosquittoServer) -> AsyncIterator[Rig]:
    tag = uuid.uuid4().hex[:8]
    mqtt = mqtt_settings(mosquitto.port, prefix=f"t{tag}/v1")
    store = tmp_path / "store.db"
    await readings(store)
    settings = control_settings(
        database_url,
        f"sqlite:///{store}",
        mqtt=mqtt,
        command_client_id=f"ctl-{tag}",
        alerts={"client_id": f"ctl-alerts-{tag}"},
        sirens={"sweep_interval_s": 0.2},
        conversions={"sweep_interval_s": 0.2},
    )
    await import_areas(settings)
    await create_users(settings, (Role.ADMIN,))
    await create_area_users(settings, [(Role.ADMIN, c.value) for c in Caller])
    async with (
        serve(settings) as url,
        httpx.AsyncClient(base_url=url, timeout=15) as client,
    ):
        r = Rig(client, settings, tag)
        for name in (ADMIN, *(c.username for c in Caller)):
            r.tokens[name] = bearer(await login(client, name, PASSWORDS[Role.ADMIN]))
        await seed(r)
        yield r


# -- the matrix ---------------------------------------------------------------------------------


def _values(rig: Rig, path: str, row: Row) -> dict[str, str]:
    values = dict(rig.seed)
    for param in re.findall(r"\{(\w+)\}", path):
        key = row.args.get(param, param)
        if key in rig.seed:  # else the row's fresh target fills it
            values[param] = rig.seed[key]
    return values


def _cut(text: str, most: int = 300) -> str:
    return text if len(text) <= most else text[:most] + "…"


def _said(resp: httpx.Response) -> str:
    return f"{resp.status_code} {_cut(resp.text)}"


async def check(rig: Rig, method: str, path: str, row: Row, wrong: list[str]) -> None:
    answers: dict[Caller, httpx.Response] = {}
    for caller in CALLERS:
        values = _values(rig, path, row)
        if row.fresh is not None:
            values |= await row.fresh(rig, caller)
        url = fill(path, values)
        body = row.body(caller, values) if row.body is not None else None
        asked = f"{method} {url} {json.dumps(row.query)} {json.dumps(body, ensure_ascii=False)}"
        where = f"{method} {path} as {caller.name} ({caller.username}): {_cut(asked)}\n    →"
        watched = caller is Caller.OUT or row.kind is Kind.EVERYWHERE
        before = await row.witness(rig, values) if row.witness and watched else None
        resp = await rig.client.request(
            method,
            url,
            json=body,
            params=dict(row.query) or None,
            headers=rig.headers(caller),
        )
        answers[caller] = resp
        if (method, path) == ("POST", "/api/v1/auth/logout"):
            # That call ended the session on purpose; the next route needs a new one.
            rig.tokens[caller.username] = bearer(
                await login(rig.client, caller.username, PASSWORDS[Role.ADMIN])
            )
        code = resp.status_code
        if row.witness is not None and watched:
            after = await row.witness(rig, values)
            if after != before:
                wrong.append(f"{where} {_said(resp)}\n    changed {before!r} to {after!r}")
        if caller is Caller.OUT:
            leaked = sorted(t for t in rig.traces if t in resp.text and t not in asked)
            if leaked:
                wrong.append(f"{where} {_said(resp)}\n    names {leaked}")
        if row.kind is Kind.EVERYWHERE:
            if code != 403:
                wrong.append(f"{where} {_said(resp)}\n    not 403")
        elif row.kind in (Kind.READ, Kind.ACTION) and caller is Caller.OUT:
            if code not in row.out:
                wrong.append(f"{where} {_said(resp)}\n    not {sorted(row.out)}")
        elif code not in row.ok:
            scope = "refused in scope" if code in (401, 403, 404) else "unexpected"
            wrong.append(f"{where} {_said(resp)}\n    {scope}, not {sorted(row.ok)}")
        elif row.kind is Kind.READ:
            missing = [k for k in row.shows if values[k] not in resp.text]
            if missing:
                wrong.append(
                    f"{where} {_said(resp)}\n    does not name {[values[k] for k in missing]}"
                )
    if row.kind is Kind.GLOBAL:
        codes = {c.name: answers[c].status_code for c in CALLERS}
        if len(set(codes.values())) != 1:
            wrong.append(f"{method} {path}: the three answer differently: {codes}")
        if row.same_body and len({answers[c].content for c in CALLERS}) != 1:
            wrong.append(f"{method} {path}: the three read different answers")


async def test_every_route_answers_in_out_and_parent_as_the_table_says(rig: Rig) -> None:
    spec = (await rig.client.get("/openapi.json")).json()
    served = {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if method in METHODS
    }
    assert not served - AREA.keys(), (
        "routes without a row in AREA (decide how areas bound them): "
        f"{sorted(served - AREA.keys())}"
    )
    assert not AREA.keys() - served, f"rows for routes not served: {sorted(AREA.keys() - served)}"

    wrong: list[str] = []
    for (method, path), row in AREA.items():
        await check(rig, method, path, row, wrong)
    assert not wrong, f"{len(wrong)} wrong answers:\n" + "\n".join(wrong)
