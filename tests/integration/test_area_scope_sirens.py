"""Command areas on the siren routes, through the live API over a real Mosquitto (SQLite and
PostgreSQL): siren posts, groups, previews, activations and their approval, schedules and
CAP messages.

The tree is tests/area_helpers.py. One siren post stands on each of four sites:

    sr-x1 site-x1/gw-x1, sr-x2 site-x2/gw-x2   hz-xihu (county)  ┐ hz (city)  ┐
    sr-b1 site-b1/gw-b1                          hz-binj (county)  ┘            │ zj (province)
    sr-n1 site-n1/gw-n1                          nb-hais (county) under nb      ┘

Groups: ``hz-city`` (sr-x1 and sr-b1), ``xihu`` (the district xihu: sr-x1, sr-x2) and
``binj`` (sr-b1). A county sees its own sirens only, and a neighbour's answers exactly as one
that does not exist; a group reaching over the border is refused, never narrowed; approving
over two counties needs their city.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
from platform_helpers import mqtt_settings
from servers import MosquittoServer, wait_until

from control.auth import Role
from shelterwatch.contract import SIREN_ACTIVATE, SIREN_CANCEL

pytestmark = pytest.mark.integration

POSTS = [
    # id, site, gateway, district, name
    ("sr-x1", "site-x1", "gw-x1", "xihu", "西湖警报一号"),
    ("sr-x2", "site-x2", "gw-x2", "xihu", "西湖警报二号"),
    ("sr-b1", "site-b1", "gw-b1", "binj", "滨江警报一号"),
    ("sr-n1", "site-n1", "gw-n1", "hais", "海曙警报一号"),
]
# What a user of hz-xihu must never read in an answer: the other counties' siren ids,
# names, sites, gateways, devices and districts.
NOT_XIHU = tuple(
    word
    for sid, site, gateway, district, name in POSTS
    if not site.startswith("site-x")
    for word in (sid, site, gateway, f"ctl-{sid}", district, name)
)

PLACED: list[tuple[Role, str]] = [
    (Role.VIEWER, "hz-xihu"),
    (Role.VIEWER, "hz"),
    (Role.VIEWER, "nb-hais"),
    (Role.VIEWER, "zj"),
    (Role.DUTY_OFFICER, "hz-xihu"),
    (Role.DUTY_OFFICER, "hz"),
    (Role.COMMANDER, "hz-xihu"),
    (Role.COMMANDER, "hz"),
]


@dataclass
class Rig:
    client: httpx.AsyncClient
    gateway: FakeGateway
    tokens: dict[str, dict[str, str]]

    def who(self, role: Role, area: str | None = None) -> dict[str, str]:
        return self.tokens[role.value if area is None else area_user(role, area)]

    async def get(self, path: str, role: Role, area: str | None = None, **params: Any) -> Any:
        return await self.client.get(path, params=params, headers=self.who(role, area))

    async def post(
        self, path: str, body: Any, role: Role, area: str | None = None
    ) -> httpx.Response:
        return await self.client.post(path, json=body, headers=self.who(role, area))

    async def put(
        self, path: str, body: Any, role: Role, area: str | None = None
    ) -> httpx.Response:
        return await self.client.put(path, json=body, headers=self.who(role, area))


def _clean_of_others(text: str) -> None:
    leaked = [word for word in NOT_XIHU if word in text]
    assert not leaked, f"the answer names {leaked}: {text}"


def _post(sid: str, site: str, gateway: str, district: str, name: str) -> dict[str, Any]:
    return {
        "id": sid,
        "name": name,
        "site": site,
        "gateway": gateway,
        "device": f"ctl-{sid}",
        "district": district,
        "lat": 30.25,
        "lon": 120.15,
        "radius_m": 800,
    }


def _ids(items: list[dict[str, Any]], key: str = "id") -> list[str]:
    return [item[key] for item in items]


@pytest.fixture
async def rig(tmp_path: Path, database_url: str, mosquitto: MosquittoServer) -> AsyncIterator[Rig]:
    tag = uuid.uuid4().hex[:8]
    mqtt = mqtt_settings(mosquitto.port, prefix=f"sirenscope{tag}/v1")
    settings = control_settings(
        database_url,
        f"sqlite:///{tmp_path / 'store.db'}",
        mqtt=mqtt,
        command_client_id=f"ctl-{tag}",
        alerts={"client_id": f"ctl-alerts-{tag}"},
        command_grace_s=0.5,
        sirens={"sweep_interval_s": 0.1},
    )
    await import_areas(settings)
    await create_users(settings, (Role.VIEWER, Role.DUTY_OFFICER, Role.COMMANDER))
    await create_area_users(settings, PLACED)
    async with (
        FakeGateway(mqtt) as gateway,
        serve(settings) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as client,
    ):
        tokens: dict[str, dict[str, str]] = {}
        for role in (Role.VIEWER, Role.DUTY_OFFICER, Role.COMMANDER):
            tokens[role.value] = bearer(await login(client, role.value, PASSWORDS[role]))
        for role, area in PLACED:
            name = area_user(role, area)
            tokens[name] = bearer(await login(client, name, PASSWORDS[role]))
        r = Rig(client, gateway, tokens)
        # The inventory is the province's to set up (a user with no area acts everywhere).
        for post in POSTS:
            resp = await r.post("/api/v1/sirens", _post(*post), Role.COMMANDER)
            assert resp.status_code == 201, resp.text
        for group in (
            {"name": "hz-city", "members": ["sr-x1", "sr-b1"]},
            {"name": "xihu", "districts": ["xihu"]},
            {"name": "binj", "members": ["sr-b1"]},
        ):
            resp = await r.post("/api/v1/siren-groups", group, Role.COMMANDER)
            assert resp.status_code == 201, resp.text
        yield r


def _silent(**targets: list[str]) -> dict[str, Any]:
    return {"kind": "silent_test", "reason": "monthly check", **targets}


def _live(**targets: list[str]) -> dict[str, Any]:
    return {"kind": "live", "signal": "air_raid", "reason": "air raid reported", **targets}


async def test_a_county_sees_and_changes_only_its_own_siren_posts(rig: Rig) -> None:
    xihu = (Role.VIEWER, "hz-xihu")
    listed = await rig.get("/api/v1/sirens", *xihu)
    assert (listed.status_code, _ids(listed.json())) == (200, ["sr-x1", "sr-x2"])
    _clean_of_others(listed.text)
    # A parent sees its children's posts; the province and a user with no area see all.
    assert _ids((await rig.get("/api/v1/sirens", Role.VIEWER, "hz")).json()) == [
        "sr-b1",
        "sr-x1",
        "sr-x2",
    ]
    every = ["sr-b1", "sr-n1", "sr-x1", "sr-x2"]
    assert _ids((await rig.get("/api/v1/sirens", Role.VIEWER, "zj")).json()) == every
    assert _ids((await rig.get("/api/v1/sirens", Role.VIEWER)).json()) == every
    # Filters cannot reach over the border either.
    by_group = await rig.get("/api/v1/sirens", *xihu, group="hz-city")
    assert _ids(by_group.json()) == ["sr-x1"]
    by_district = await rig.get("/api/v1/sirens", *xihu, district="binj")
    assert (by_district.status_code, by_district.json()) == (200, [])

    own = await rig.get("/api/v1/sirens/sr-x2", *xihu)
    assert (own.status_code, own.json()["site"], own.json()["gateway"]) == (
        200,
        "site-x2",
        "gw-x2",
    )
    # A neighbour's post answers exactly as a post that does not exist.
    other = await rig.get("/api/v1/sirens/sr-b1", *xihu)
    unknown = await rig.get("/api/v1/sirens/sr-zz", *xihu)
    assert other.status_code == unknown.status_code == 404
    assert other.json() == {"detail": "no siren 'sr-b1'"}
    assert unknown.json() == {"detail": "no siren 'sr-zz'"}

    commander = (Role.COMMANDER, "hz-xihu")
    fields = {k: v for k, v in _post(*POSTS[2]).items() if k != "id"}
    changed = await rig.put("/api/v1/sirens/sr-b1", {**fields, "radius_m": 1}, *commander)
    assert (changed.status_code, changed.json()) == (404, {"detail": "no siren 'sr-b1'"})
    deleted = await rig.client.delete("/api/v1/sirens/sr-b1", headers=rig.who(*commander))
    assert (deleted.status_code, deleted.json()) == (404, {"detail": "no siren 'sr-b1'"})
    # Placing a post: only on a site and a gateway of the county.
    on_b1 = await rig.post(
        "/api/v1/sirens", _post("sr-new", "site-b1", "gw-b1", "", "新"), *commander
    )
    assert on_b1.status_code == 403 and "site 'site-b1' is not in your area" in on_b1.text
    aimed = await rig.post(
        "/api/v1/sirens", _post("sr-new", "site-x1", "gw-b1", "", "新"), *commander
    )
    assert aimed.status_code == 403 and "gateway 'gw-b1' is not in your area" in aimed.text
    moved = await rig.put(
        "/api/v1/sirens/sr-x2",
        {**fields, "site": "site-b1", "gateway": "gw-x2", "device": "ctl-sr-x2"},
        *commander,
    )
    assert moved.status_code == 403
    placed = await rig.post(
        "/api/v1/sirens", _post("sr-x3", "site-x1", "gw-x1", "xihu", "西湖警报三号"), *commander
    )
    assert (placed.status_code, placed.json()["site"]) == (201, "site-x1")
    imported = await rig.post(
        "/api/v1/sirens/import",
        {
            "format": "yaml",
            "content": "sirens:\n"
            "  - {id: sr-b9, name: b9, site: site-b1, gateway: gw-b1, device: d9,"
            " lat: 30.0, lon: 120.0, radius_m: 500}\n",
        },
        *commander,
    )
    assert imported.status_code == 403
    # Nothing of the neighbour changed: the city still reads sr-b1 as it was.
    b1 = (await rig.get("/api/v1/sirens/sr-b1", Role.VIEWER, "hz")).json()
    assert (b1["radius_m"], b1["site"]) == (800, "site-b1")
    assert (await rig.get("/api/v1/sirens/sr-b9", Role.VIEWER)).status_code == 404

    for fmt in ("csv", "yaml"):
        export = await rig.get("/api/v1/sirens/export", *xihu, format=fmt)
        assert export.status_code == 200 and "sr-x1" in export.text and "sr-x3" in export.text
        _clean_of_others(export.text)
        # A group that also holds a neighbour's siren is not the county's to export.
        assert "hz-city" not in export.text


async def test_groups_show_only_their_members_in_the_area(rig: Rig) -> None:
    xihu = (Role.VIEWER, "hz-xihu")
    listed = await rig.get("/api/v1/siren-groups", *xihu)
    assert listed.status_code == 200
    _clean_of_others(listed.text)
    groups = {g["name"]: g for g in listed.json()}
    # "all" is the county's all; binj has no siren in the county and is not listed.
    assert sorted(groups) == ["all", "hz-city", "xihu"]
    assert groups["all"]["sirens"] == ["sr-x1", "sr-x2"]
    city = groups["hz-city"]
    assert (city["members"], city["sirens"], city["sirens_outside_scope"]) == (
        ["sr-x1"],
        ["sr-x1"],
        1,
    )
    assert (await rig.get("/api/v1/siren-groups/binj", *xihu)).json() == {
        "detail": "no group 'binj'"
    }
    # The city sees binj and the whole of hz-city.
    hz = {g["name"]: g for g in (await rig.get("/api/v1/siren-groups", Role.VIEWER, "hz")).json()}
    assert hz["hz-city"]["sirens"] == ["sr-b1", "sr-x1"] and hz["binj"]["sirens"] == ["sr-b1"]
    assert hz["all"]["sirens"] == ["sr-b1", "sr-x1", "sr-x2"]

    commander = (Role.COMMANDER, "hz-xihu")
    named = await rig.post(
        "/api/v1/siren-groups", {"name": "mix", "members": ["sr-b1"]}, *commander
    )
    nope = await rig.post("/api/v1/siren-groups", {"name": "mix", "members": ["sr-zz"]}, *commander)
    assert named.status_code == nope.status_code == 404
    assert named.json()["detail"] == nope.json()["detail"].replace("sr-zz", "sr-b1")
    # A neighbour's district answers in the words of a district that has no siren anywhere.
    by_district = await rig.post(
        "/api/v1/siren-groups", {"name": "mix", "districts": ["binj"]}, *commander
    )
    nowhere = await rig.post(
        "/api/v1/siren-groups", {"name": "mix", "districts": ["nowhere"]}, *commander
    )
    assert by_district.status_code == nowhere.status_code == 422
    assert by_district.json() == {"detail": "no siren of district 'binj' in your area"}
    assert nowhere.json() == {"detail": "no siren of district 'nowhere' in your area"}
    widened = await rig.put("/api/v1/siren-groups/hz-city", {"members": ["sr-x1"]}, *commander)
    assert widened.status_code == 403 and "area hz may change it" in widened.json()["detail"]
    hidden = await rig.put("/api/v1/siren-groups/binj", {"members": ["sr-x1"]}, *commander)
    assert (hidden.status_code, hidden.json()) == (404, {"detail": "no group 'binj'"})
    own = await rig.post(
        "/api/v1/siren-groups", {"name": "xihu-east", "members": ["sr-x2"]}, *commander
    )
    assert (own.status_code, own.json()["sirens"]) == (201, ["sr-x2"])
    # The city's hz-city is untouched.
    assert (await rig.get("/api/v1/siren-groups/hz-city", Role.VIEWER)).json()["members"] == [
        "sr-b1",
        "sr-x1",
    ]


async def test_a_county_officer_cannot_preview_test_or_sound_a_neighbours_sirens(
    rig: Rig,
) -> None:
    officer = (Role.DUTY_OFFICER, "hz-xihu")
    for path in ("/api/v1/activation-previews", "/api/v1/activations"):
        for body in (_silent(sirens=["sr-b1"]), _live(sirens=["sr-x1", "sr-n1"])):
            hidden = await rig.post(path, body, *officer)
            unknown = await rig.post(path, {**body, "sirens": ["sr-zz"]}, *officer)
            assert hidden.status_code == unknown.status_code == 404, hidden.text
            missing = [s for s in body["sirens"] if s not in ("sr-x1",)]
            assert hidden.json()["detail"] == unknown.json()["detail"].replace("sr-zz", missing[0])
        # A group over the border is refused whole, with the count and the area that may act.
        across = await rig.post(path, _silent(groups=["hz-city"]), *officer)
        assert across.status_code == 403
        assert across.json()["detail"] == (
            "1 of the 2 sirens that groups hz-city reach lie outside your area (hz-xihu): "
            "a user of area hz must act on them"
        )
        _clean_of_others(across.text)
        # A group with no siren in the county is unknown to it.
        binj = await rig.post(path, _silent(groups=["binj"]), *officer)
        assert binj.status_code == 404 and "binj" in binj.json()["detail"]

    # "all" is every siren of the county.
    preview = await rig.post("/api/v1/activation-previews", _silent(groups=["all"]), *officer)
    assert preview.status_code == 200
    assert _ids(preview.json()["targets"], "siren") == ["sr-x1", "sr-x2"]
    assert [g["gateway"] for g in preview.json()["gateways"]] == ["gw-x1", "gw-x2"]
    _clean_of_others(preview.text)

    started = await rig.post("/api/v1/activations", _silent(groups=["all"]), *officer)
    assert started.status_code == 202, started.text
    await wait_until(lambda: len(rig.gateway.commands()) >= 2, 10, "the county's two commands")
    assert sorted(g for g, _ in rig.gateway.commands()) == ["gw-x1", "gw-x2"]
    assert not any(g in ("gw-b1", "gw-n1") for g, _ in rig.gateway.received)
    # Nothing the county did can be read by another county; its city sees it.
    act = started.json()["id"]
    assert (await rig.get(f"/api/v1/activations/{act}", Role.VIEWER, "nb-hais")).json() == {
        "detail": f"no activation {act!r}"
    }
    assert (await rig.get("/api/v1/activations", Role.VIEWER, "nb-hais")).json() == []
    city = await rig.get(f"/api/v1/activations/{act}", Role.VIEWER, "hz")
    assert _ids(city.json()["targets"], "siren") == ["sr-x1", "sr-x2"]


async def test_a_city_commander_approves_a_live_alert_over_two_counties_and_a_county_cannot(
    rig: Rig,
) -> None:
    requested = await rig.post(
        "/api/v1/activations", _live(groups=["hz-city"]), Role.DUTY_OFFICER, "hz"
    )
    assert requested.status_code == 202, requested.text
    act = requested.json()
    assert act["approval_area"] == "hz"
    assert "a commander of area hz or above" in act["state_detail"]
    path = f"/api/v1/activations/{act['id']}"

    # The county commander may not decide over the border: not approve, reject nor cancel.
    for verb in ("approve", "reject", "cancel"):
        refused = await rig.post(f"{path}/{verb}", {"comment": "x"}, Role.COMMANDER, "hz-xihu")
        assert refused.status_code == 403, refused.text
        assert refused.json()["detail"] == (
            f"{act['id']} reaches beyond your area (hz-xihu): 1 of its 2 sirens lie outside "
            f"it. To {verb} it needs a user of area hz"
        )
    still = (await rig.get(path, Role.VIEWER, "hz")).json()
    assert (still["state"], still["approved_by"], still["cancelled_by"]) == (
        "pending_approval",
        None,
        None,
    )
    assert rig.gateway.received == []

    # The county reads it with its own siren only.
    seen = await rig.get(path, Role.VIEWER, "hz-xihu")
    assert seen.status_code == 200
    view = seen.json()
    assert _ids(view["targets"], "siren") == ["sr-x1"]
    assert (view["targets_outside_scope"], view["counts"]) == (1, {"pending": 1})
    assert view["approval_area"] == "hz"
    _clean_of_others(seen.text)
    listed = await rig.get("/api/v1/activations", Role.VIEWER, "hz-xihu")
    assert [(a["id"], _ids(a["targets"], "siren")) for a in listed.json()] == [
        (act["id"], ["sr-x1"])
    ]
    _clean_of_others(listed.text)
    assert (await rig.get(path, Role.VIEWER, "nb-hais")).status_code == 404

    approved = await rig.post(f"{path}/approve", {"comment": "confirmed"}, Role.COMMANDER, "hz")
    assert approved.status_code == 200, approved.text
    assert approved.json()["approved_by"] == area_user(Role.COMMANDER, "hz")
    await wait_until(
        lambda: len(rig.gateway.commands(SIREN_ACTIVATE)) >= 2, 10, "both counties' commands"
    )
    sent = {g: c for g, c in rig.gateway.commands(SIREN_ACTIVATE)}
    assert sorted(sent) == ["gw-b1", "gw-x1"]
    devices = {g: c.siren.sirens if c.siren else [] for g, c in sent.items()}
    assert devices == {"gw-b1": ["ctl-sr-b1"], "gw-x1": ["ctl-sr-x1"]}
    # The neighbour's gateway answers too; the county must not read a word of it.
    for gateway in ("gw-b1", "gw-x1"):
        device = devices[gateway][0]
        await rig.gateway.ack(
            gateway,
            sent[gateway].id,
            "running",
            device=device,
            outcome="started",
            detail=f"{device} on {gateway} sounding",
        )

    async def both_started() -> bool:
        full = (await rig.get(path, Role.VIEWER)).json()
        return all(t["state"] == "started" for t in full["targets"])

    await wait_until(both_started, 10, "both sirens started")
    province = (await rig.get(path, Role.VIEWER, "zj")).json()
    assert _ids(province["targets"], "siren") == ["sr-b1", "sr-x1"]
    assert province["targets_outside_scope"] == 0
    county = await rig.get(path, Role.VIEWER, "hz-xihu")
    assert county.json()["counts"] == {"started": 1}
    _clean_of_others(county.text)
    report = await rig.get(f"{path}/report", Role.VIEWER, "hz-xihu", format="csv")
    assert report.status_code == 200 and "sr-x1" in report.text
    _clean_of_others(report.text)

    # The outbound CAP message follows the activation: the county lists it, but its
    # document (every siren's area) is the city's to read; another city sees nothing.
    async def published() -> bool:
        return bool((await rig.get(f"{path}/cap", Role.VIEWER, "hz")).json())

    await wait_until(published, 10, "the CAP alert")
    cap = (await rig.get(f"{path}/cap", Role.VIEWER, "hz-xihu")).json()
    assert [m["activation"] for m in cap] == [act["id"]]
    document = await rig.get(f"/api/v1/cap/{cap[0]['identifier']}", Role.VIEWER, "hz-xihu")
    assert document.status_code == 403 and "area hz may read it" in document.json()["detail"]
    _clean_of_others(document.text)
    city_doc = await rig.get(f"/api/v1/cap/{cap[0]['identifier']}", Role.VIEWER, "hz")
    assert city_doc.status_code == 200 and "binj" in city_doc.text
    assert (await rig.get(f"{path}/cap", Role.VIEWER, "nb-hais")).json() == []
    assert (await rig.get("/api/v1/cap", Role.VIEWER, "nb-hais")).json() == []
    nb_doc = await rig.get(f"/api/v1/cap/{cap[0]['identifier']}", Role.VIEWER, "nb-hais")
    assert nb_doc.status_code == 404

    # The county may not stop the city's alert either; the city may.
    stop = await rig.post(f"{path}/cancel", {}, Role.DUTY_OFFICER, "hz-xihu")
    assert stop.status_code == 403
    stopped = await rig.post(f"{path}/cancel", {}, Role.COMMANDER, "hz")
    assert (stopped.status_code, stopped.json()["state"]) == (200, "cancelling")
    await wait_until(lambda: len(rig.gateway.commands(SIREN_CANCEL)) >= 2, 10, "two cancels")
    # The neighbour's gateway refuses its cancel, in words naming itself and its siren: the
    # city reads them, the county reads neither the event nor the names.
    cancel_b1 = next(c for g, c in rig.gateway.commands(SIREN_CANCEL) if g == "gw-b1")
    await rig.gateway.ack("gw-b1", cancel_b1.id, "rejected", detail="ctl-sr-b1 on gw-b1 is busy")

    async def refusal_recorded() -> bool:
        events = (await rig.get(path, Role.VIEWER, "hz")).json()["events"]
        return any(e["event"] == "cancel_refused" for e in events)

    await wait_until(refusal_recorded, 10, "the refused cancel")
    county = await rig.get(path, Role.VIEWER, "hz-xihu")
    assert "cancel_refused" not in [e["event"] for e in county.json()["events"]]
    assert county.json()["cancelled_by"] == area_user(Role.COMMANDER, "hz")
    _clean_of_others(county.text)


async def test_a_county_requests_its_own_live_alert_and_escalates_upward(rig: Rig) -> None:
    own = await rig.post(
        "/api/v1/activations", _live(groups=["xihu"]), Role.DUTY_OFFICER, "hz-xihu"
    )
    assert own.status_code == 202, own.text
    assert own.json()["approval_area"] == "hz-xihu"
    # The county commander approves within the county.
    approved = await rig.post(
        f"/api/v1/activations/{own.json()['id']}/approve", {}, Role.COMMANDER, "hz-xihu"
    )
    assert approved.status_code == 200, approved.text
    await wait_until(lambda: len(rig.gateway.commands(SIREN_ACTIVATE)) >= 2, 10, "two commands")
    assert sorted(g for g, _ in rig.gateway.commands(SIREN_ACTIVATE)) == ["gw-x1", "gw-x2"]

    # Another county request: the city commander may approve it too (escalation goes up).
    second = await rig.post(
        "/api/v1/activations", _live(sirens=["sr-x2"]), Role.DUTY_OFFICER, "hz-xihu"
    )
    by_city = await rig.post(
        f"/api/v1/activations/{second.json()['id']}/approve", {}, Role.COMMANDER, "hz"
    )
    assert by_city.status_code == 200 and by_city.json()["state"] == "active"


async def test_schedules_belong_to_the_area_that_holds_all_their_sirens(rig: Rig) -> None:
    base = {"rule": "FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0", "programme": []}
    base["programme"] = [{"kind": "silent_test"}]
    officer = (Role.DUTY_OFFICER, "hz-xihu")
    across = await rig.post(
        "/api/v1/schedules", {**base, "name": "mix", "groups": ["hz-city"]}, *officer
    )
    assert across.status_code == 422
    assert "1 of 2 sirens outside your area (hz-xihu)" in across.text and "area hz" in across.text
    named = await rig.post(
        "/api/v1/schedules", {**base, "name": "mix", "sirens": ["sr-n1"]}, *officer
    )
    unknown = await rig.post(
        "/api/v1/schedules", {**base, "name": "mix", "sirens": ["sr-zz"]}, *officer
    )
    assert named.status_code == unknown.status_code == 422
    assert "unknown sirens sr-n1" in named.text and "unknown sirens sr-zz" in unknown.text
    _clean_of_others(across.text)
    own = await rig.post(
        "/api/v1/schedules", {**base, "name": "xihu-weekly", "groups": ["xihu"]}, *officer
    )
    assert own.status_code == 201, own.text
    city = await rig.post(
        "/api/v1/schedules",
        {**base, "name": "hz-weekly", "groups": ["hz-city"]},
        Role.DUTY_OFFICER,
        "hz",
    )
    assert city.status_code == 201, city.text

    assert _ids((await rig.get("/api/v1/schedules", *officer)).json(), "name") == ["xihu-weekly"]
    assert _ids((await rig.get("/api/v1/schedules", Role.VIEWER, "hz")).json(), "name") == [
        "hz-weekly",
        "xihu-weekly",
    ]
    hidden = await rig.get("/api/v1/schedules/hz-weekly", *officer)
    missing = await rig.get("/api/v1/schedules/zz-weekly", *officer)
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["detail"] == missing.json()["detail"].replace("zz-weekly", "hz-weekly")
    disable = await rig.post("/api/v1/schedules/hz-weekly/disable", None, *officer)
    assert disable.status_code == 404
    assert (await rig.get("/api/v1/schedules/hz-weekly/runs", *officer)).status_code == 404
    assert (await rig.get("/api/v1/schedules/hz-weekly", Role.VIEWER, "hz")).json()["enabled"]
