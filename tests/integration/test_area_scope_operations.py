"""Command areas on the operational routes, through the live API (SQLite and PostgreSQL):
sites and their history, alerts, commands, conversion orders and the audit trail.

The tree is tests/area_helpers.py: hz-xihu (site-x1/gw-x1, site-x2/gw-x2) and hz-binj
(site-b1/gw-b1) under the city hz, nb-hais (site-n1/gw-n1) under nb, all under zj. A county
sees its own sites only, and what lies outside answers exactly as what does not exist; the
city sees both its counties; acting on a whole conversion order needs an area over all of it.
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

from control import ControlSettings
from control.alerts.records import record_event
from control.auth import Role
from control.db import Database
from shelterwatch.contract import Alert
from shelterwatch.store import Sample
from shelterwatch.store.sqlite import SqliteStore

pytestmark = pytest.mark.integration

T0 = 1_758_160_920_000
SITES = ("site-x1", "site-x2", "site-b1", "site-n1")
GATEWAYS = {"site-x1": "gw-x1", "site-x2": "gw-x2", "site-b1": "gw-b1", "site-n1": "gw-n1"}
# What a user of hz-xihu must never read in an answer to a question that did not name it.
NOT_XIHU = ("site-b1", "site-n1", "gw-b1", "gw-n1")

PLACED: list[tuple[Role, str]] = [
    (Role.VIEWER, "hz-xihu"),
    (Role.VIEWER, "hz"),
    (Role.VIEWER, "nb-hais"),
    (Role.DUTY_OFFICER, "hz-xihu"),
    (Role.DUTY_OFFICER, "hz"),
    (Role.COMMANDER, "hz-xihu"),
    (Role.COMMANDER, "hz"),
    (Role.COMMANDER, "nb-hais"),
    (Role.COMMANDER, "zj"),
]


@dataclass
class Rig:
    client: httpx.AsyncClient
    settings: ControlSettings
    gateway: FakeGateway
    # Alert ids by site.
    alerts: dict[str, int]

    async def as_(self, role: Role, area: str | None = None) -> dict[str, str]:
        name = role.value if area is None else area_user(role, area)
        return bearer(await login(self.client, name, PASSWORDS[role]))


def _clean_of_others(text: str) -> None:
    leaked = [code for code in NOT_XIHU if code in text]
    assert not leaked, f"the answer names {leaked}: {text}"


async def _readings(path: Path) -> None:
    async with SqliteStore(path) as store:
        await store.write(
            [
                Sample("ventilation", site, GATEWAYS[site], "vent", T0 + i, {"overpressure": 50.0})
                for site in SITES
                for i in range(3)
            ]
        )


async def _alerts(settings: ControlSettings) -> dict[str, int]:
    ids: dict[str, int] = {}
    async with Database(settings.database_url) as db:
        for site in ("site-x1", "site-b1", "site-n1"):
            alert = Alert(
                active=True,
                ts=T0,
                raised_ts=T0,
                severity="major",
                kind="threshold",
                point="overpressure",
                message=f"overpressure low at {site}",
                value=12.0,
            )
            applied = await record_event(db, site, "overpressure-low", "vent", alert, [])
            assert applied is not None
            ids[site] = applied.record.id
    return ids


@pytest.fixture
async def rig(tmp_path: Path, database_url: str, mosquitto: MosquittoServer) -> AsyncIterator[Rig]:
    tag = uuid.uuid4().hex[:8]
    mqtt = mqtt_settings(mosquitto.port, prefix=f"scope{tag}/v1")
    store_path = tmp_path / "store.db"
    await _readings(store_path)
    settings = control_settings(
        database_url,
        f"sqlite:///{store_path}",
        mqtt=mqtt,
        command_client_id=f"ctl-{tag}",
        alerts={"client_id": f"ctl-alerts-{tag}"},
        conversions={"sweep_interval_s": 0.2},
    )
    await import_areas(settings)
    await create_users(settings, (Role.VIEWER, Role.DUTY_OFFICER, Role.COMMANDER))
    await create_area_users(settings, PLACED)
    alerts = await _alerts(settings)
    async with (
        FakeGateway(mqtt) as gateway,
        serve(settings) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as client,
    ):
        yield Rig(client, settings, gateway, alerts)


async def test_sites_and_history_are_seen_only_within_the_area(rig: Rig) -> None:
    c = rig.client
    xihu = await rig.as_(Role.VIEWER, "hz-xihu")

    listed = await c.get("/api/v1/sites", headers=xihu)
    assert (listed.status_code, sorted(listed.json())) == (200, ["site-x1", "site-x2"])
    city = (await c.get("/api/v1/sites", headers=await rig.as_(Role.VIEWER, "hz"))).json()
    assert sorted(city) == ["site-b1", "site-x1", "site-x2"]
    everyone = (await c.get("/api/v1/sites", headers=await rig.as_(Role.VIEWER))).json()
    assert sorted(everyone) == sorted(SITES)

    own = await c.get("/api/v1/sites/site-x1/latest", headers=xihu)
    assert own.status_code == 200
    assert own.json()["devices"]["vent"]["points"]["overpressure"]["value"] == 50.0
    _clean_of_others(own.text)
    # A neighbour's site answers exactly as a site that does not exist.
    other = await c.get("/api/v1/sites/site-b1/latest", headers=xihu)
    unknown = await c.get("/api/v1/sites/site-zz/latest", headers=xihu)
    assert other.status_code == unknown.status_code == 404
    assert other.json()["detail"] == unknown.json()["detail"].replace("site-zz", "site-b1")

    query = {"device": "vent", "point": "overpressure", "since": T0 - 1, "until": T0 + 10}
    history = await c.get("/api/v1/sites/site-x2/history", params=query, headers=xihu)
    assert history.status_code == 200
    assert [p[1] for p in history.json()["points"]] == [50.0, 50.0, 50.0]
    hidden = await c.get("/api/v1/sites/site-n1/history", params=query, headers=xihu)
    absent = await c.get("/api/v1/sites/site-zz/history", params=query, headers=xihu)
    assert hidden.status_code == absent.status_code == 404
    assert hidden.json()["detail"] == absent.json()["detail"].replace("site-zz", "site-n1")
    # The city reaches into both its counties, not into the other city.
    hz = await rig.as_(Role.VIEWER, "hz")
    query_b1 = await c.get("/api/v1/sites/site-b1/history", params=query, headers=hz)
    assert query_b1.status_code == 200
    assert (await c.get("/api/v1/sites/site-n1/latest", headers=hz)).status_code == 404


async def test_alerts_are_listed_read_and_acknowledged_only_within_the_area(rig: Rig) -> None:
    c = rig.client
    xihu = await rig.as_(Role.VIEWER, "hz-xihu")

    listed = await c.get("/api/v1/alerts", params={"state": "all"}, headers=xihu)
    assert listed.status_code == 200
    assert [(a["id"], a["site"]) for a in listed.json()] == [(rig.alerts["site-x1"], "site-x1")]
    _clean_of_others(listed.text)
    # Naming a neighbour's site in the filter finds nothing rather than an error.
    filtered = await c.get("/api/v1/alerts", params={"site": "site-b1"}, headers=xihu)
    assert (filtered.status_code, filtered.json()) == (200, [])
    city = (await c.get("/api/v1/alerts", headers=await rig.as_(Role.VIEWER, "hz"))).json()
    assert sorted(a["site"] for a in city) == ["site-b1", "site-x1"]

    own = await c.get(f"/api/v1/alerts/{rig.alerts['site-x1']}", headers=xihu)
    assert (own.status_code, own.json()["site"]) == (200, "site-x1")
    b1 = rig.alerts["site-b1"]
    other = await c.get(f"/api/v1/alerts/{b1}", headers=xihu)
    unknown = await c.get("/api/v1/alerts/999999", headers=xihu)
    assert other.status_code == unknown.status_code == 404
    assert other.json() == {"detail": f"no alert {b1}"}
    assert unknown.json() == {"detail": "no alert 999999"}

    officer = await rig.as_(Role.DUTY_OFFICER, "hz-xihu")
    refused = await c.post(f"/api/v1/alerts/{b1}/ack", json={"comment": "x"}, headers=officer)
    assert (refused.status_code, refused.json()) == (404, {"detail": f"no alert {b1}"})
    acked = await c.post(
        f"/api/v1/alerts/{rig.alerts['site-x1']}/ack",
        json={"comment": "inspected the fan"},
        headers=officer,
    )
    assert acked.status_code == 200, acked.text
    assert acked.json()["acked_by"] == "duty_officer.hz-xihu"
    # The refused acknowledgement changed nothing: the alert is still open to its own area.
    still = await c.get(f"/api/v1/alerts/{b1}", headers=await rig.as_(Role.VIEWER, "hz"))
    assert (still.json()["acknowledged"], still.json()["acked_by"]) == (False, None)


async def test_commands_go_only_to_gateways_of_the_area(rig: Rig) -> None:
    c = rig.client
    everywhere = await rig.as_(Role.DUTY_OFFICER)
    xihu_officer = await rig.as_(Role.DUTY_OFFICER, "hz-xihu")

    def command(gateway: str) -> dict[str, Any]:
        return {"gateway": gateway, "device": "vent", "action": "ping", "ttl_s": 60}

    sent: dict[str, str] = {}
    for gateway in ("gw-b1", "gw-n1"):
        resp = await c.post("/api/v1/commands", json=command(gateway), headers=everywhere)
        assert resp.status_code == 202, resp.text
        sent[gateway] = resp.json()["id"]
    own = await c.post("/api/v1/commands", json=command("gw-x1"), headers=xihu_officer)
    assert own.status_code == 202, own.text
    sent["gw-x1"] = own.json()["id"]

    other = await c.post("/api/v1/commands", json=command("gw-b1"), headers=xihu_officer)
    unknown = await c.post("/api/v1/commands", json=command("gw-zz"), headers=xihu_officer)
    assert other.status_code == unknown.status_code == 404
    assert other.json()["detail"] == unknown.json()["detail"].replace("gw-zz", "gw-b1")

    await wait_until(lambda: len(rig.gateway.commands("ping")) == 3, 10, "three pings published")
    by_officer = [
        g for g, cmd in rig.gateway.commands("ping") if cmd.actor == "duty_officer.hz-xihu"
    ]
    assert by_officer == ["gw-x1"]

    xihu = await rig.as_(Role.VIEWER, "hz-xihu")
    listed = await c.get("/api/v1/commands", headers=xihu)
    assert [r["id"] for r in listed.json()] == [sent["gw-x1"]]
    _clean_of_others(listed.text)
    filtered = await c.get("/api/v1/commands", params={"gateway": "gw-b1"}, headers=xihu)
    assert (filtered.status_code, filtered.json()) == (200, [])
    city = (await c.get("/api/v1/commands", headers=await rig.as_(Role.VIEWER, "hz"))).json()
    assert sorted(r["gateway"] for r in city) == ["gw-b1", "gw-x1"]
    whole = (await c.get("/api/v1/commands", headers=await rig.as_(Role.VIEWER))).json()
    assert sorted(r["gateway"] for r in whole) == ["gw-b1", "gw-n1", "gw-x1"]

    mine = await c.get(f"/api/v1/commands/{sent['gw-x1']}", headers=xihu)
    assert (mine.status_code, mine.json()["gateway"]) == (200, "gw-x1")
    hidden = await c.get(f"/api/v1/commands/{sent['gw-b1']}", headers=xihu)
    absent = await c.get("/api/v1/commands/cmd-nope", headers=xihu)
    assert hidden.status_code == absent.status_code == 404
    assert hidden.json()["detail"] == absent.json()["detail"].replace("cmd-nope", sent["gw-b1"])


def _order(kind: str, *sites: str) -> dict[str, Any]:
    shelters = [{"site": s, "gateway": GATEWAYS.get(s, "gw-zz")} for s in sites]
    return {"kind": kind, "level": "emergency", "shelters": shelters, "reason": "exercise"}


async def test_conversion_orders_stay_within_the_area_and_escalate_up(rig: Rig) -> None:
    c = rig.client
    base = "/api/v1/conversions"
    xihu_officer = await rig.as_(Role.DUTY_OFFICER, "hz-xihu")

    # A county orders its own shelters, and no neighbour's; the neighbour's shelter and a
    # gateway of it answer as unknown ones do.
    other = await c.post(base, json=_order("drill", "site-x1", "site-b1"), headers=xihu_officer)
    unknown = await c.post(base, json=_order("drill", "site-x1", "site-zz"), headers=xihu_officer)
    assert other.status_code == unknown.status_code == 404
    assert other.json()["detail"] == unknown.json()["detail"].replace("site-zz", "site-b1")
    borrowed = _order("drill", "site-x1")
    borrowed["shelters"][0]["gateway"] = "gw-b1"
    assert (await c.post(base, json=borrowed, headers=xihu_officer)).status_code == 404

    drill = await c.post(base, json=_order("drill", "site-x1", "site-x2"), headers=xihu_officer)
    assert drill.status_code == 202, drill.text
    assert (drill.json()["area"], drill.json()["state"]) == ("hz-xihu", "running")
    # Its own county may stop it.
    drill_id = drill.json()["id"]
    stopped = await c.post(f"{base}/{drill_id}/cancel", json={}, headers=xihu_officer)
    assert (stopped.status_code, stopped.json()["state"]) == (200, "cancelled")

    # The city requests a real order over two of its counties: its area is the city.
    hz_officer = await rig.as_(Role.DUTY_OFFICER, "hz")
    real = await c.post(base, json=_order("real", "site-x1", "site-b1"), headers=hz_officer)
    assert real.status_code == 202, real.text
    order = real.json()
    assert (order["area"], order["state"]) == ("hz", "pending_approval")
    path = f"{base}/{order['id']}"

    # A county commander cannot approve across the county border: 403 naming the city.
    county = await c.post(
        f"{path}/approve", json={}, headers=await rig.as_(Role.COMMANDER, "hz-xihu")
    )
    assert county.status_code == 403
    assert "'hz'" in county.json()["detail"]
    _clean_of_others(county.text)
    # Another city's commander does not even see it.
    nb = await c.post(f"{path}/approve", json={}, headers=await rig.as_(Role.COMMANDER, "nb-hais"))
    missing = await c.post(
        f"{base}/conv-000000000000/approve",
        json={},
        headers=await rig.as_(Role.COMMANDER, "nb-hais"),
    )
    assert nb.status_code == missing.status_code == 404
    assert nb.json()["detail"] == missing.json()["detail"].replace("conv-000000000000", order["id"])
    still = (await c.get(path, headers=await rig.as_(Role.VIEWER))).json()
    assert (still["state"], still["approved_by"]) == ("pending_approval", None)

    city = await c.post(
        f"{path}/approve", json={"comment": "go"}, headers=await rig.as_(Role.COMMANDER, "hz")
    )
    assert city.status_code == 200, city.text
    assert (city.json()["state"], city.json()["approved_by"]) == ("running", "commander.hz")
    assert sorted(t["site"] for t in city.json()["targets"]) == ["site-b1", "site-x1"]

    # The county sees the order for its own shelter only, in the list, the order and the report.
    xihu = await rig.as_(Role.VIEWER, "hz-xihu")
    seen = await c.get(path, headers=xihu)
    assert seen.status_code == 200
    assert [t["site"] for t in seen.json()["targets"]] == ["site-x1"]
    per_shelter = len(seen.json()["targets"][0]["steps"])
    assert seen.json()["steps_total"] == per_shelter
    assert all(e["site"] in ("", "site-x1") for e in seen.json()["events"])
    _clean_of_others(seen.text)
    listed = await c.get(base, headers=xihu)
    assert [o["id"] for o in listed.json()] == [order["id"], drill_id]
    _clean_of_others(listed.text)
    for fmt in ("json", "csv", "html"):
        report = await c.get(f"{path}/report", params={"format": fmt}, headers=xihu)
        assert report.status_code == 200 and "site-x1" in report.text
        _clean_of_others(report.text)
    whole = (await c.get(f"{path}/report", headers=await rig.as_(Role.VIEWER, "hz"))).json()
    assert sorted({r["site"] for r in whole["rows"]}) == ["site-b1", "site-x1"]

    # nb-hais sees neither order, and the order itself answers as an unknown one.
    nb_viewer = await rig.as_(Role.VIEWER, "nb-hais")
    assert (await c.get(base, headers=nb_viewer)).json() == []
    hidden = await c.get(path, headers=nb_viewer)
    absent = await c.get(f"{base}/conv-000000000000", headers=nb_viewer)
    assert hidden.status_code == absent.status_code == 404
    assert hidden.json()["detail"] == absent.json()["detail"].replace(
        "conv-000000000000", order["id"]
    )

    # A step of the neighbour's shelter is one the county's order does not have.
    step = {"site": "site-b1", "step": "remove-peacetime-equipment", "note": "done"}
    theirs = await c.post(f"{path}/confirm", json=step, headers=xihu_officer)
    nowhere = await c.post(f"{path}/confirm", json=step | {"site": "site-zz"}, headers=xihu_officer)
    assert theirs.status_code == nowhere.status_code == 404
    assert theirs.json()["detail"] == nowhere.json()["detail"].replace("site-zz", "site-b1")

    # Cancelling stops both counties' shelters: the county may not, the city may.
    county_cancel = await c.post(
        f"{path}/cancel", json={}, headers=await rig.as_(Role.COMMANDER, "hz-xihu")
    )
    assert county_cancel.status_code == 403 and "'hz'" in county_cancel.json()["detail"]
    city_cancel = await c.post(
        f"{path}/cancel",
        json={"comment": "stand down"},
        headers=await rig.as_(Role.COMMANDER, "hz"),
    )
    assert (city_cancel.status_code, city_cancel.json()["cancelled_by"]) == (200, "commander.hz")


async def test_the_audit_trail_is_for_those_who_act_everywhere(rig: Rig) -> None:
    c = rig.client
    scoped = await rig.as_(Role.COMMANDER, "hz")
    for path in ("/api/v1/audit", "/api/v1/audit/verify", "/api/v1/audit/export"):
        refused = await c.get(path, headers=scoped)
        assert refused.status_code == 403, (path, refused.text)
        detail = refused.json()["detail"]
        assert "every area" in detail and "/api/v1/conversions/{id}/report" in detail
    # A viewer hears about the role, not the area.
    viewer = await c.get("/api/v1/audit", headers=await rig.as_(Role.VIEWER, "hz-xihu"))
    assert viewer.status_code == 403 and "role" in viewer.json()["detail"]

    for headers in (await rig.as_(Role.COMMANDER), await rig.as_(Role.COMMANDER, "zj")):
        page = await c.get("/api/v1/audit", headers=headers)
        assert page.status_code == 200, page.text
        # The whole trail: the tree's import and every user placed in it.
        entries = (await c.get("/api/v1/audit", params={"after_seq": 0}, headers=headers)).json()
        actions = [e["action"] for e in entries["entries"]]
        assert actions[0] == "areas.import"
        assert actions.count("users.create") == 3 + len(PLACED)
        verified = await c.get("/api/v1/audit/verify", headers=headers)
        assert verified.status_code == 200 and verified.json()["ok"] is True
        assert verified.json()["checked"] >= len(actions)
        export = await c.get("/api/v1/audit/export", headers=headers)
        assert export.status_code == 200
        assert export.text.count('"users.create"') == 3 + len(PLACED)
