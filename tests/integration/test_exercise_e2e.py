"""Exercises end to end: a province directs, counties and a city respond, the report is timed.

Real servers: the session's Mosquitto (a prefix of each test's own), the control service on
uvicorn over SQLite, a simulated fleet whose faults the control service switches on through
``{p}/sim/inject``, and fake gateways that record every command. The collector's side is
played by publishing alerts the way its engine does.
"""

from __future__ import annotations

import contextlib
import json
import time
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
from sqlalchemy import select

from control import ControlSettings
from control.auth import Role
from control.cap.build import PARAM_EXERCISE
from control.db import AuditEntry, CapMessage, ConversionOrder, Database, SirenActivation
from control.exercises.injects import draw
from control.exercises.library import library
from firmware_sim import Fleet, FleetSpec
from firmware_sim.injects import InjectListener
from shelterwatch.config import MqttSettings
from shelterwatch.contract import Alert, alert_topic
from shelterwatch.mqtt_client import MqttClient
from shelterwatch.signing import load_private_key, verify_command

pytestmark = pytest.mark.integration

LABEL = "zj-2026-autumn"
SEED = 2033
AREAS = ["hz-binj", "hz-xihu", "nb-hais"]
# Siren posts: id -> (site, gateway). The device is "siren", as on the simulated posts.
SIRENS = {
    "siren-x1": ("site-x1", "gw-x1"),
    "siren-b1": ("site-b1", "gw-b1"),
    "siren-n1": ("site-n1", "gw-n1"),
}
# Each platform site is played by one simulated shelter and one simulated siren post.
SIM_SITES = {
    "site-x1": ["shelter-01", "siren-01"],
    "site-x2": ["shelter-02", "siren-02"],
    "site-b1": ["shelter-03", "siren-03"],
    "site-n1": ["shelter-04", "siren-04"],
}
AREA_OF = {"site-x1": "hz-xihu", "site-x2": "hz-xihu", "site-b1": "hz-binj", "site-n1": "nb-hais"}
PEOPLE = [
    (Role.COMMANDER, "zj"),
    (Role.COMMANDER, "hz"),
    (Role.DUTY_OFFICER, "hz-xihu"),
    (Role.DUTY_OFFICER, "hz-binj"),
    (Role.DUTY_OFFICER, "nb-hais"),
    (Role.VIEWER, "hz-binj"),
]
DIRECTOR = area_user(Role.COMMANDER, "zj")


@dataclass
class Rig:
    client: httpx.AsyncClient
    tokens: dict[str, dict[str, str]]
    gateways: FakeGateway
    settings: ControlSettings
    engine: MqttClient

    async def call(
        self, who: str, method: str, path: str, body: Any = None, **params: Any
    ) -> httpx.Response:
        return await self.client.request(
            method, path, json=body, params=params or None, headers=self.tokens[who]
        )

    async def ok(self, who: str, method: str, path: str, body: Any = None, **params: Any) -> Any:
        resp = await self.call(who, method, path, body, **params)
        assert resp.status_code in (200, 201, 202), (method, path, resp.status_code, resp.text)
        return resp.json()

    async def raise_alert(self, site: str, rule: str, device: str) -> int:
        ts = time.time_ns() // 1_000_000
        alert = Alert(
            active=True, ts=ts, raised_ts=ts, severity="major", message=f"{rule} at {site}"
        )
        topic = alert_topic(site, rule, device, self.settings.mqtt.prefix)
        await self.engine.publish(topic, alert.to_json(), qos=1, retain=True)
        return ts

    async def clear_alert(self, site: str, rule: str, device: str, raised_ts: int) -> None:
        ts = time.time_ns() // 1_000_000
        alert = Alert(active=False, ts=ts, raised_ts=raised_ts, severity="major", message="back")
        topic = alert_topic(site, rule, device, self.settings.mqtt.prefix)
        await self.engine.publish(topic, alert.to_json(), qos=1)
        await self.engine.publish(topic, b"", qos=1, retain=True)


@contextlib.asynccontextmanager
async def rig(tmp_path: Path, mosquitto: MosquittoServer) -> AsyncIterator[Rig]:
    tag = uuid.uuid4().hex[:8]
    mqtt: MqttSettings = mqtt_settings(mosquitto.port, prefix=f"t{tag}/v1")
    settings = control_settings(
        f"sqlite:///{tmp_path / 'control.db'}",
        f"sqlite:///{tmp_path / 'store.db'}",
        mqtt=mqtt,
        command_client_id=f"ctl-{tag}",
        alerts={"client_id": f"ctl-alerts-{tag}"},
        sirens={"sweep_interval_s": 0.2},
        conversions={"sweep_interval_s": 0.5},
    )
    await create_users(settings, (Role.ADMIN,))
    await import_areas(settings)
    await create_area_users(settings, PEOPLE)
    async with (
        FakeGateway(mqtt) as gateways,
        MqttClient(mqtt, f"engine-{tag}") as engine,
        serve(settings) as url,
        httpx.AsyncClient(base_url=url, timeout=15) as client,
    ):
        tokens = {"admin": bearer(await login(client, "admin", PASSWORDS[Role.ADMIN]))}
        for role, area in PEOPLE:
            name = area_user(role, area)
            tokens[name] = bearer(await login(client, name, PASSWORDS[role]))
        r = Rig(client, tokens, gateways, settings, engine)
        for sid, (site, gateway) in SIRENS.items():
            body = {
                "id": sid,
                "name": f"post {sid}",
                "site": site,
                "gateway": gateway,
                "device": "siren",
                "lat": 30.2,
                "lon": 120.1,
                "radius_m": 800,
            }
            await r.ok("admin", "POST", "/api/v1/sirens", body)
        yield r


def exercise_body(
    areas: list[str], director: str = DIRECTOR, exercise: str = LABEL
) -> dict[str, Any]:
    now = time.time_ns() // 1_000_000
    return {
        "id": exercise,
        "name": "浙江省秋季防空演习",
        "scenario": "空袭预警后，三区县同时出现设备故障。",
        "areas": areas,
        "director": director,
        "planned_start_ms": now,
        "planned_end_ms": now + 3_600_000,
    }


def drill(sirens: list[str], exercise: str | None, kind: str = "drill") -> dict[str, Any]:
    body: dict[str, Any] = {"kind": kind, "sirens": sirens, "reason": "exercise response"}
    if kind != "silent_test":
        body["signal"] = "air_raid"
    if exercise is not None:
        body["exercise"] = exercise
    return body


def alert_for(kind: str, others: set[str]) -> str:
    """A rule of ``kind`` that no other situation at the same site would also claim."""
    return next(rule for rule in library()[kind].alerts if rule not in others)


async def test_a_province_exercise_is_injected_answered_by_every_level_and_timed_by_the_audit_trail(
    tmp_path: Path, mosquitto: MosquittoServer
) -> None:
    async with (
        rig(tmp_path, mosquitto) as r,
        Fleet(FleetSpec(shelters=4, sirens=4, districts=())) as fleet,
        InjectListener(fleet, r.settings.mqtt, sites=SIM_SITES) as sim,
    ):
        await wait_until(sim.subscribed.is_set, 10, "the simulator's inject subscription")
        xihu, binj, hais = (
            area_user(Role.DUTY_OFFICER, a) for a in ("hz-xihu", "hz-binj", "nb-hais")
        )
        city = area_user(Role.COMMANDER, "hz")
        base = f"/api/v1/exercises/{LABEL}"

        # The director's area must cover every participating area: the city's does not.
        bad = await r.call(DIRECTOR, "POST", "/api/v1/exercises", exercise_body(AREAS, city))
        assert bad.status_code == 422, bad.text
        created = await r.ok(DIRECTOR, "POST", "/api/v1/exercises", exercise_body(AREAS))
        assert created["label"] == LABEL and created["state"] == "planned"
        # Not yet running: its label is refused.
        early = await r.call(city, "POST", "/api/v1/activations", drill(["siren-b1"], LABEL))
        assert early.status_code == 409, early.text
        # Only the director directs.
        assert (await r.call(city, "POST", f"{base}/start")).status_code == 403
        await r.ok(DIRECTOR, "POST", f"{base}/start", {"comment": "开始"})

        # Three situations chosen, two drawn at random with a fixed seed.
        chosen = [
            {"kind": "door_jam", "site": "site-x1"},
            {"kind": "siren_silent", "siren": "siren-b1"},
            {"kind": "filter_clog", "site": "site-n1"},
        ]
        situations = [
            (await r.ok(DIRECTOR, "POST", f"{base}/situations", body))[0] for body in chosen
        ]
        drawn = await r.ok(DIRECTOR, "POST", f"{base}/situations", {"random": 2, "seed": SEED})
        situations += drawn
        sites = sorted(SIM_SITES)
        candidates = {
            name: sorted(SIRENS) if kind.target == "siren" else sites
            for name, kind in library().items()
        }
        expected = draw(SEED, 2, candidates)
        assert [(s["kind"], s["siren"] or s["site"]) for s in drawn] == [
            (d.kind, d.target) for d in expected
        ]
        assert [s["origin"] for s in drawn] == [f"random:{SEED}:0", f"random:{SEED}:1"]
        assert all(s["published"] for s in situations), situations
        s1, s2, s3, s4, s5 = situations
        assert [s["area"] for s in situations] == [AREA_OF[s["site"]] for s in situations]

        # The simulator switched every fault on at the site that plays each situation.
        await wait_until(lambda: len(sim.applied) == 5, 10, "five injects applied")
        assert all(a.ok for a in sim.applied), sim.applied
        active = {(f.site, f.scenario) for f in fleet.faults}
        assert ("shelter-01", "door_jam") in active and ("siren-03", "comm_loss") in active
        assert ("shelter-04", "filter_clogging") in active

        # The alert engine notices each situation (the collector's part, played here).
        raised: dict[str, tuple[str, str, int]] = {}
        for s in situations:
            others = {
                rule
                for o in situations
                if o is not s and o["site"] == s["site"]
                for rule in library()[o["kind"]].alerts
            }
            rule = alert_for(s["kind"], others)
            device = s["device"] or ("siren" if s["siren"] else "gw")
            raised[s["id"]] = (rule, device, await r.raise_alert(s["site"], rule, device))

        async def labelled() -> bool:
            listed = await r.ok(DIRECTOR, "GET", f"{base}/situations")
            return all(len(s["alerts"]) == 1 for s in listed)

        await wait_until(labelled, 15, "every situation's alert labelled with the exercise")
        listed = {s["id"]: s for s in await r.ok(DIRECTOR, "GET", f"{base}/situations")}
        alert_of = {sid: s["alerts"][0] for sid, s in listed.items()}

        # County duty officers acknowledge; the county, the city and the county act.
        await r.ok(xihu, "POST", f"/api/v1/alerts/{alert_of[s1['id']]}/ack", {"comment": "收到"})
        order = await r.ok(
            xihu,
            "POST",
            "/api/v1/conversions",
            {
                "kind": "drill",
                "level": "emergency",
                "shelters": [{"site": "site-x1", "gateway": "gw-x1"}],
                "reason": "门卡滞，转入战时演练",
                "exercise": LABEL,
            },
        )
        await r.ok(binj, "POST", f"/api/v1/alerts/{alert_of[s2['id']]}/ack", {"comment": "收到"})
        activation = await r.ok(city, "POST", "/api/v1/activations", drill(["siren-b1"], LABEL))
        await r.ok(hais, "POST", f"/api/v1/alerts/{alert_of[s3['id']]}/ack", {"comment": "收到"})
        await r.ok(hais, "POST", "/api/v1/work-orders", {"alert_id": alert_of[s3["id"]]})
        await r.ok(hais, "POST", f"{base}/situations/{s3['id']}/repair")
        # The first random one: its county acknowledges, and the engine clears its alert.
        officer4 = area_user(Role.DUTY_OFFICER, s4["area"])
        await r.ok(
            officer4, "POST", f"/api/v1/alerts/{alert_of[s4['id']]}/ack", {"comment": "收到"}
        )
        rule4, device4, raised4 = raised[s4["id"]]
        await r.clear_alert(s4["site"], rule4, device4, raised4)

        async def cleared() -> bool:
            alert = await r.ok("admin", "GET", f"/api/v1/alerts/{alert_of[s4['id']]}")
            return bool(alert["state"] == "cleared")

        await wait_until(cleared, 10, "the random situation's alert cleared")
        # The second random one: nobody answers. A neighbouring county cannot repair it.
        outsider = binj if s5["area"] != "hz-binj" else hais
        denied = await r.call(outsider, "POST", f"{base}/situations/{s5['id']}/repair")
        assert denied.status_code == 404

        # The command envelope, signed and published to the gateway, carries the label.
        key = load_private_key(r.settings.command_private_key.get_secret_value()).public_key()

        def sent_to_b1() -> bool:
            return any(
                c.siren is not None
                for g, c in r.gateways.commands("siren.activate")
                if g == "gw-b1"
            )

        await wait_until(sent_to_b1, 10, "the drill's command at gw-b1")
        (command,) = [c for g, c in r.gateways.commands("siren.activate") if g == "gw-b1"]
        assert command.siren is not None and command.siren.exercise == LABEL
        assert command.siren.kind == "drill" and verify_command(command, key)

        await r.ok(DIRECTOR, "POST", f"{base}/end")
        ended = await r.ok(DIRECTOR, "GET", base)
        assert ended["state"] == "ended" and ended["situations"] == 5
        # Its label is refused once it has ended.
        late = await r.call(city, "POST", "/api/v1/activations", drill(["siren-b1"], LABEL))
        assert late.status_code == 409, late.text

        report = await r.ok(DIRECTOR, "GET", f"{base}/report")
        by_id = {t["situation"]: t for t in report["situations"]}
        assert report["exercise"] == LABEL and LABEL in report["label"]
        assert [by_id[s["id"]]["status"] for s in situations] == [
            "responded",
            "responded",
            "resolved",
            "resolved",
            "missed",
        ]
        assert report["missed"] == [s5["id"]]
        t1, t2, t3, t4 = (by_id[s["id"]] for s in (s1, s2, s3, s4))
        # Who answered, at which level.
        assert (t1["acknowledged"]["by"], t1["acted"]["by"]) == (xihu, xihu)
        assert t1["acted"]["what"].startswith(f"conversion.request {order['id']}")
        assert (t2["acknowledged"]["by"], t2["acted"]["by"]) == (binj, city)
        assert t2["acted"]["area"] == "hz" and t2["acted"]["what"].startswith("siren.request")
        assert (t3["acknowledged"]["by"], t3["acted"]["by"], t3["resolved"]["by"]) == (
            hais,
            hais,
            hais,
        )
        assert t3["acted"]["what"].startswith("work_orders.create")
        assert t4["acknowledged"]["by"] == officer4 and t4["acted"]["at_ms"] is None
        assert t4["resolved"]["what"] == "alerts cleared"
        assert by_id[s5["id"]]["acknowledged"]["at_ms"] is None

        # Every person's step in the report is the audit trail's row, time and name exactly.
        async with Database(r.settings.database_url) as db, db.session() as session:
            audit = {e.seq: e for e in await session.scalars(select(AuditEntry))}
            for t in report["situations"]:
                inject = audit[t["inject_seq"]]
                assert (inject.action, inject.ts_ms, inject.actor) == (
                    "exercise.inject",
                    t["injected_ms"],
                    DIRECTOR,
                )
                assert json.loads(inject.params)["exercise"] == LABEL
                for name in ("acknowledged", "acted", "resolved"):
                    stage = t[name]
                    if stage["audit_seq"] is None:
                        continue
                    row = audit[stage["audit_seq"]]
                    assert (row.ts_ms, row.actor) == (stage["at_ms"], stage["by"]), (t, name)
                    assert stage["after_ms"] == row.ts_ms - t["injected_ms"]
                    assert row.seq > t["inject_seq"]
            assert t1["acknowledged"]["audit_seq"] is not None
            assert audit[t1["acknowledged"]["audit_seq"]].action == "alerts.ack"
            assert audit[t2["acted"]["audit_seq"]].action == "siren.request"
            assert audit[t3["resolved"]["audit_seq"]].action == "exercise.repair"
            # Every step of the exercise is audited with its id.
            steps = [e for e in audit.values() if e.action.startswith("exercise.")]
            assert {e.action for e in steps} == {
                "exercise.create",
                "exercise.start",
                "exercise.inject",
                "exercise.repair",
                "exercise.end",
            }
            assert all(json.loads(e.params)["exercise"] == LABEL for e in steps)
            # The rows the responses made carry the label, and the CAP message says Exercise.
            stored = await session.get(SirenActivation, activation["id"])
            assert stored is not None and stored.exercise == LABEL
            conversion = await session.get(ConversionOrder, order["id"])
            assert conversion is not None and conversion.exercise == LABEL

        async def cap_stored() -> bool:
            async with Database(r.settings.database_url) as db, db.session() as session:
                query = select(CapMessage).where(CapMessage.activation == activation["id"])
                return (await session.scalars(query)).first() is not None

        await wait_until(cap_stored, 10, "the drill's CAP message")
        async with Database(r.settings.database_url) as db, db.session() as session:
            query = select(CapMessage).where(CapMessage.activation == activation["id"])
            cap = (await session.scalars(query)).one()
        assert cap.status == "Exercise" and "<status>Exercise</status>" in cap.xml
        assert f"<valueName>{PARAM_EXERCISE}</valueName>" in cap.xml
        assert f"<value>{LABEL}</value>" in cap.xml

        # The area comparison: each county's own times.
        areas = {a["area"]: a for a in report["by_area"]}
        assert sorted(areas) == AREAS and all(a["exercise"] == LABEL for a in areas.values())
        assert areas[s5["area"]]["missed"] == 1
        assert areas["hz-binj"]["mean_act_ms"] == t2["acted"]["after_ms"]

        # A county sees its own part only: the binj viewer, one situation and one area.
        viewer = area_user(Role.VIEWER, "hz-binj")
        own = await r.ok(viewer, "GET", f"{base}/report")
        assert [t["situation"] for t in own["situations"]] == [s2["id"]]
        assert [a["area"] for a in own["by_area"]] == ["hz-binj"]

        # Reports as CSV and HTML: the label on every row and every section.
        csv_text = (await r.call(DIRECTOR, "GET", f"{base}/report", format="csv")).text
        lines = csv_text.strip().splitlines()
        assert len(lines) == 6 and all(line.startswith(f"{LABEL},") for line in lines[1:])
        areas_csv = (
            await r.call(DIRECTOR, "GET", f"{base}/report", format="csv", table="areas")
        ).text
        assert all(line.startswith(f"{LABEL},") for line in areas_csv.strip().splitlines()[1:])
        html = (await r.call(DIRECTOR, "GET", f"{base}/report", format="html")).text
        assert html.count(f"演习 EXERCISE {LABEL}") >= 5


async def test_an_exercise_label_goes_only_on_drills_inside_its_areas_and_stays_on_what_it_sends(
    tmp_path: Path, mosquitto: MosquittoServer
) -> None:
    async with rig(tmp_path, mosquitto) as r:
        label = "xihu-drill-1"
        base = f"/api/v1/exercises/{label}"
        await r.ok(
            DIRECTOR, "POST", "/api/v1/exercises", exercise_body(["hz-xihu"], exercise=label)
        )
        # Scope: a neighbouring county does not see it at all; its own county does.
        binj = area_user(Role.VIEWER, "hz-binj")
        assert await r.ok(binj, "GET", "/api/v1/exercises") == []
        assert (await r.call(binj, "GET", base)).status_code == 404
        xihu = area_user(Role.DUTY_OFFICER, "hz-xihu")
        assert [e["id"] for e in await r.ok(xihu, "GET", "/api/v1/exercises")] == [label]
        await r.ok(DIRECTOR, "POST", f"{base}/start")

        # A live alert and a real order never carry an exercise label.
        live = drill(["siren-x1"], label, kind="live")
        assert (await r.call("admin", "POST", "/api/v1/activations", live)).status_code == 422
        real = {
            "kind": "real",
            "level": "emergency",
            "shelters": [{"site": "site-x1", "gateway": "gw-x1"}],
            "reason": "r",
            "exercise": label,
        }
        assert (await r.call("admin", "POST", "/api/v1/conversions", real)).status_code == 422
        # Outside the exercise's areas its label is refused, for sirens and for shelters.
        outside = await r.call("admin", "POST", "/api/v1/activations", drill(["siren-b1"], label))
        assert outside.status_code == 409 and "outside" in outside.json()["detail"]
        order = {**real, "kind": "drill", "shelters": [{"site": "site-b1", "gateway": "gw-b1"}]}
        refused = await r.call("admin", "POST", "/api/v1/conversions", order)
        assert refused.status_code == 409, refused.text

        # Inside: a drill and a silent test carry it in the signed envelope; the drill's CAP
        # message is an Exercise with the label; the activation names it.
        sounded = await r.ok("admin", "POST", "/api/v1/activations", drill(["siren-x1"], label))
        silent = await r.ok(
            "admin", "POST", "/api/v1/activations", drill(["siren-x1"], label, kind="silent_test")
        )
        await wait_until(
            lambda: len([c for g, c in r.gateways.commands("siren.activate") if g == "gw-x1"]) == 2,
            10,
            "both commands at gw-x1",
        )
        orders = [c.siren for g, c in r.gateways.commands("siren.activate") if g == "gw-x1"]
        assert [(o.kind, o.exercise) for o in orders if o is not None] == [
            ("drill", label),
            ("silent_test", label),
        ]
        for activation in (sounded, silent):
            view = await r.ok("admin", "GET", f"/api/v1/activations/{activation['id']}")
            assert view["exercise"] == label
            # And its report, in JSON and on every CSV row.
            path = f"/api/v1/activations/{activation['id']}/report"
            assert (await r.ok("admin", "GET", path))["exercise"] == label
            rows = (await r.call("admin", "GET", path, format="csv")).text.splitlines()
            assert rows[0].endswith(",exercise") and len(rows) > 1
            assert all(row.endswith(f",{label}") for row in rows[1:]), rows

        async def cap_of_drill() -> list[CapMessage]:
            async with Database(r.settings.database_url) as db, db.session() as session:
                query = select(CapMessage).where(CapMessage.activation == sounded["id"])
                return list(await session.scalars(query))

        async def has_cap() -> bool:
            return bool(await cap_of_drill())

        await wait_until(has_cap, 10, "the drill's CAP message")
        (cap,) = await cap_of_drill()
        assert cap.status == "Exercise" and f"<value>{label}</value>" in cap.xml
        assert "【演习】" in cap.xml and "This is an exercise" in cap.xml

        # No route changes a label: the exercise API has no PUT, PATCH or DELETE.
        spec = (await r.client.get("/openapi.json")).json()
        methods = {
            method
            for path, item in spec["paths"].items()
            if path.startswith("/api/v1/exercises")
            for method in item
        }
        assert methods <= {"get", "post"}

        await r.ok(DIRECTOR, "POST", f"{base}/end")
        after = await r.call("admin", "POST", "/api/v1/activations", drill(["siren-x1"], label))
        assert after.status_code == 409 and "ended" in after.json()["detail"]
