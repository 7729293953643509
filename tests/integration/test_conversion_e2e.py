"""Conversions through the whole platform: a simulated shelter -> a real gateway -> Mosquitto
-> the collector (telemetry into the store) and the real control service, driven through its
HTTP API by users of each role.

Automated steps write to the simulator through the gateway; verified steps pass only when the
simulated physics reach their condition (the door's seal, the overpressure in filtered mode);
manual steps wait for a person. The physics run at their own speed except the water tank,
which fills 100 times faster (a real tank takes hours). Every test runs under its own MQTT
prefix; a watcher records every command and posture the broker carries.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from control_helpers import PASSWORDS, bearer, control_settings, create_users, login, serve
from platform_helpers import collector_for, gateways_for, mqtt_settings, running
from pydantic import SecretStr
from servers import MosquittoServer, wait_until

from control.auth import Role
from firmware_sim import Fleet, FleetSpec
from firmware_sim.physics import ShelterPhysics
from shelterwatch.config import MqttSettings
from shelterwatch.contract import CommandRequest, SitePosture
from shelterwatch.mqtt_client import MqttClient
from shelterwatch.signing import generate_keypair
from shelterwatch.store.factory import open_store

pytestmark = [
    pytest.mark.integration,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]

SITE = "shelter-01"
MANUAL = ["remove-peacetime-equipment", "install-blocking-plates", "refit-door-sills"]
WARTIME_STEPS = [
    *MANUAL,
    "close-protective-door",
    "door-sealed",
    "ventilation-isolated",
    "ventilation-filtered",
    "overpressure-held",
    "fill-water-tanks",
]
DEADLINE_S = 120.0
FILTERED_FIRST = {
    "name": "filtered-first",
    "version": 1,
    "direction": "to_wartime",
    "title_zh": "先滤毒（联锁测试）",
    "title_en": "Filtered first (interlock test)",
    "steps": [
        {
            "id": "ventilation-filtered",
            "kind": "automated",
            "title_zh": "通风切换为滤毒式",
            "title_en": "Ventilation to filtered",
            "command": {"device": "vent", "point": "mode", "value": "filtered"},
            "check": [{"device": "vent", "point": "mode", "eq": "filtered"}],
        }
    ],
}


@dataclass
class Watcher:
    """Every command any gateway is sent, and every posture published."""

    mqtt: MqttSettings
    commands: list[CommandRequest] = field(default_factory=list)
    markers: list[str] = field(default_factory=list)
    postures: list[tuple[str, SitePosture, bool]] = field(default_factory=list)
    client: MqttClient | None = None

    async def run(self) -> None:
        async with MqttClient(self.mqtt, f"conv-watch-{uuid.uuid4().hex[:8]}") as client:
            p = self.mqtt.prefix
            await client.subscribe([f"{p}/gw/+/cmd", f"{p}/posture/+"], qos=1)
            self.client = client
            async for message in client.messages():
                if message.topic.endswith("/cmd"):
                    if message.payload == b"{}":
                        self.markers.append(message.topic)
                    else:
                        self.commands.append(CommandRequest.model_validate_json(message.payload))
                else:
                    site = message.topic.rsplit("/", 1)[1]
                    payload = SitePosture.model_validate_json(message.payload)
                    self.postures.append((site, payload, message.retain))

    async def barrier(self) -> None:
        """Whatever was published on the command topics before this has arrived by now."""
        assert self.client is not None
        topic = f"{self.mqtt.prefix}/gw/marker-{uuid.uuid4().hex[:6]}/cmd"
        await self.client.publish(topic, b"{}", qos=1)
        await wait_until(lambda: topic in self.markers, 5, "the marker")

    def writes(self, point: str | None = None) -> list[CommandRequest]:
        return [c for c in self.commands if point is None or c.params.get("point") == point]


@dataclass
class Platform:
    client: httpx.AsyncClient
    tokens: dict[Role, dict[str, str]]
    shelter: ShelterPhysics
    watcher: Watcher

    async def post(self, role: Role, path: str, body: Any = None) -> httpx.Response:
        return await self.client.post(path, json=body, headers=self.tokens[role])

    async def get(self, path: str, **params: Any) -> Any:
        resp = await self.client.get(path, params=params, headers=self.tokens[Role.VIEWER])
        assert resp.status_code == 200, resp.text
        return resp.json() if "json" in resp.headers["content-type"] else resp.text

    async def order(self, role: Role, **body: Any) -> dict[str, Any]:
        doc = {"kind": "drill", "level": "e2e", "shelters": [{"site": SITE}]} | body
        doc.setdefault("reason", f"{doc['kind']} conversion test")
        resp = await self.post(role, "/api/v1/conversions", doc)
        assert resp.status_code == 202, resp.text
        result: dict[str, Any] = resp.json()
        return result

    async def step(self, order_id: str, step: str) -> dict[str, Any]:
        order = await self.get(f"/api/v1/conversions/{order_id}")
        found: dict[str, Any] = next(s for s in order["targets"][0]["steps"] if s["step"] == step)
        return found

    async def wait_step(self, order_id: str, step: str, *states: str, timeout: float = 20) -> Any:
        async def reached() -> bool:
            return (await self.step(order_id, step))["state"] in states

        await wait_until(reached, timeout, f"{step} in {states}", interval=0.2)
        return await self.step(order_id, step)

    async def wait_order(self, order_id: str, state: str, timeout: float = 30) -> Any:
        async def reached() -> bool:
            return (await self.get(f"/api/v1/conversions/{order_id}"))["state"] == state

        await wait_until(reached, timeout, f"{order_id} {state}", interval=0.25)
        return await self.get(f"/api/v1/conversions/{order_id}")

    async def confirm(self, order_id: str, step: str, role: Role = Role.DUTY_OFFICER) -> Any:
        await self.wait_step(order_id, step, "active")
        body = {"site": SITE, "step": step, "note": f"{step}: done and checked on site"}
        resp = await self.post(role, f"/api/v1/conversions/{order_id}/confirm", body)
        assert resp.status_code == 200, resp.text
        return resp.json()


@contextlib.asynccontextmanager
async def platform(
    tmp_path: Path, database_url: str, mosquitto: MosquittoServer
) -> AsyncIterator[Platform]:
    tag = uuid.uuid4().hex[:8]
    mqtt = mqtt_settings(mosquitto.port, prefix=f"conv{tag}/v1")
    plans = tmp_path / "plans"
    plans.mkdir()
    (plans / "filtered-first.yaml").write_text(yaml.safe_dump(FILTERED_FIRST, allow_unicode=True))
    private_key, public_key = generate_keypair()
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    settings = control_settings(
        database_url,
        store_url,
        mqtt=mqtt,
        command_private_key=SecretStr(private_key),
        command_client_id=f"ctl-{tag}",
        alerts={"client_id": f"ctl-alerts-{tag}"},
        command_grace_s=0.5,
        conversions={
            "plans_dir": str(plans),
            "levels": {"e2e": {"deadline_s": DEADLINE_S, "title_zh": "测试", "title_en": "Test"}},
            "sweep_interval_s": 0.25,
            "max_reading_age_s": 5.0,
        },
    )
    await create_users(settings)
    watcher = Watcher(mqtt)
    spec = FleetSpec(shelters=1, sirens=0, tick_s=0.05)
    async with Fleet(spec) as fleet, open_store(store_url) as store:
        shelter = fleet.shelters[SITE]
        shelter.water.tank_level = 60.0
        shelter.water.fill_pct_s = 5.0
        gateways = gateways_for(
            fleet,
            mqtt,
            interval_s=0.2,
            outbox_dir=tmp_path,
            snapshot_interval_s=1.0,
            commands={"public_key": public_key, "replay_cache_path": str(tmp_path / "gw.db")},
        )
        collector = collector_for(store, mqtt, client_id=f"coll-{tag}")
        async with (
            running(watcher.run(), collector.run(), *(g.run() for g in gateways)),
            serve(settings) as url,
            httpx.AsyncClient(base_url=url, timeout=10) as client,
        ):
            await wait_until(lambda: watcher.client is not None, 10, "the watcher")
            for g in gateways:
                await wait_until(g.connected.is_set, 10, "the gateway connected")
            tokens = {r: bearer(await login(client, r.value, PASSWORDS[r])) for r in Role}
            p = Platform(client, tokens, shelter, watcher)

            async def reporting() -> bool:
                resp = await client.get(f"/api/v1/sites/{SITE}/latest", headers=tokens[Role.VIEWER])
                return resp.status_code == 200 and set(resp.json()["devices"]) >= {"door", "vent"}

            await wait_until(reporting, 15, "telemetry of the shelter in the store")
            yield p


def _by_step(report: Any) -> dict[str, Any]:
    return {r["step"]: r for r in report["rows"]}


async def test_a_drill_converts_the_shelter_and_reverts_it(
    tmp_path: Path, database_url: str, mosquitto: MosquittoServer
) -> None:
    async with platform(tmp_path, database_url, mosquitto) as p:
        plans = await p.get("/api/v1/conversion-plans")
        assert {x["name"] for x in plans} >= {"shelter-to-wartime", "shelter-to-peacetime"}
        order = await p.order(Role.DUTY_OFFICER)
        oid = order["id"]
        assert order["state"] == "running" and order["exercise"] == "drill"
        assert [s["step"] for s in order["targets"][0]["steps"]] == WARTIME_STEPS
        by_name = {x["name"]: x for x in plans}
        assert order["targets"][0]["plan_hash"] == by_name["shelter-to-wartime"]["hash"]

        # Manual steps need a person: nothing moves the door until they are confirmed.
        await p.wait_step(oid, "install-blocking-plates", "active")
        await p.wait_step(oid, "fill-water-tanks", "waiting")
        await p.watcher.barrier()
        assert p.watcher.writes() == []
        assert p.shelter.door.position == "open"
        viewer = await p.post(
            Role.VIEWER,
            f"/api/v1/conversions/{oid}/confirm",
            {"site": SITE, "step": MANUAL[0], "note": "x"},
        )
        assert viewer.status_code == 403
        for step in MANUAL:
            await p.confirm(oid, step)

        done = await p.wait_order(oid, "completed", timeout=45)
        assert not done["deadline_missed"]
        assert done["finished_ms"] < done["deadline_ms"]
        # The physics, not the commands, say the shelter is converted.
        assert p.shelter.door.position == "closed"
        assert p.shelter.vent.mode == "filtered"
        assert p.shelter.vent.overpressure >= 30
        assert p.shelter.water.tank_level >= 95
        points = [w.params["point"] for w in p.watcher.writes()]
        assert sorted(points) == ["command", "mode", "mode", "pump_running"]
        modes = [w.params["value"] for w in p.watcher.writes("mode")]
        assert modes == ["isolated", "filtered"]

        report = await p.get(f"/api/v1/conversions/{oid}/report")
        rows = _by_step(report)
        assert list(rows) == WARTIME_STEPS and report["deadline_met"] is True
        assert report["label"] == "DRILL 演练" and report["exercise"] == "drill"
        for step in WARTIME_STEPS:
            row = rows[step]
            assert row["state"] == "done" and row["took_s"] is not None, row
            who = "duty_officer" if step in MANUAL else "telemetry"
            assert row["confirmed_by"] == who, row
        # The overpressure is verified only after the physics built it up in filtered mode.
        filtered, held = rows["ventilation-filtered"], rows["overpressure-held"]
        assert held["done_ms"] - filtered["done_ms"] >= 1000
        assert rows["door-sealed"]["done_ms"] > rows["close-protective-door"]["done_ms"]
        csv_text = await p.get(f"/api/v1/conversions/{oid}/report", format="csv")
        assert len(csv_text.strip().splitlines()) == 1 + len(WARTIME_STEPS)
        html = await p.get(f"/api/v1/conversions/{oid}/report", format="html")
        assert "DRILL 演练" in html and "安装防护密闭封堵板" in html

        # The posture went peacetime -> converting -> wartime, retained on the broker.
        seen = [(s, x.posture) for s, x, _r in p.watcher.postures if s == SITE]
        assert seen[-2:] == [(SITE, "converting"), (SITE, "wartime")], seen

        # The revert: its own plan, the same controls.
        back = await p.order(Role.DUTY_OFFICER, direction="to_peacetime")
        bid = back["id"]
        assert back["targets"][0]["plan"] == "shelter-to-peacetime"
        await p.confirm(bid, "decontamination-done")
        await p.wait_step(bid, "open-protective-door", "done", timeout=20)
        assert p.shelter.vent.mode == "clean"
        for step in ("remove-blocking-plates", "remove-door-sills", "restore-peacetime-use"):
            await p.confirm(bid, step)
        await p.wait_order(bid, "completed")

        async def peacetime() -> bool:
            return any(s == SITE and x.posture == "peacetime" for s, x, _ in p.watcher.postures)

        await wait_until(peacetime, 10, "the peacetime posture")


async def test_filtered_ventilation_with_a_door_open_is_refused_and_nothing_is_sent(
    tmp_path: Path, database_url: str, mosquitto: MosquittoServer
) -> None:
    async with platform(tmp_path, database_url, mosquitto) as p:
        order = await p.order(Role.DUTY_OFFICER, plan="filtered-first")
        oid = order["id"]
        step = await p.wait_step(oid, "ventilation-filtered", "active")

        async def refused(text: str) -> bool:
            return text in (await p.step(oid, "ventilation-filtered"))["detail"]

        await wait_until(lambda: refused("door door is open"), 10, "the door interlock")
        step = await p.step(oid, "ventilation-filtered")
        assert step["detail"].startswith("refused by interlock")
        assert step["attempts"] == 0 and step["command_id"] is None
        # With the door closed, the mode sequence still refuses clean -> filtered.
        p.shelter.door.do("close")
        await wait_until(lambda: refused("清洁 → 隔绝 → 滤毒"), 15, "the sequence interlock")
        await p.watcher.barrier()
        assert p.watcher.writes() == [], "a write reached the broker"
        assert p.shelter.vent.mode == "clean"
        order = await p.get(f"/api/v1/conversions/{oid}")
        refusals = [e for e in order["events"] if e["event"] == "step_refused"]
        assert len(refusals) == 2, refusals
        resp = await p.post(Role.DUTY_OFFICER, f"/api/v1/conversions/{oid}/cancel", {})
        assert resp.status_code == 200 and resp.json()["state"] == "cancelled"


async def test_a_door_reopened_after_verification_unverifies_the_step_and_raises_an_alert(
    tmp_path: Path, database_url: str, mosquitto: MosquittoServer
) -> None:
    async with platform(tmp_path, database_url, mosquitto) as p:
        oid = (await p.order(Role.DUTY_OFFICER))["id"]
        for step in MANUAL:
            await p.confirm(oid, step)
        await p.wait_step(oid, "door-sealed", "done")
        p.shelter.door.do("open")  # someone opens the protective door by hand
        regressed = await p.wait_step(oid, "close-protective-door", "regressed", timeout=10)
        assert regressed["regressions"] == 1 and "closed is false" in regressed["detail"]

        async def alerted() -> list[Any]:
            alerts = await p.get("/api/v1/alerts", site=SITE, state="all")
            return [a for a in alerts if a["rule"] == "conversion-close-protective-door"]

        async def any_alert() -> bool:
            return bool(await alerted())

        await wait_until(any_alert, 10, "the regression alert")
        alert = (await alerted())[0]  # the newest
        assert alert["state"] == "raised" and alert["kind"] == "posture"
        order = await p.get(f"/api/v1/conversions/{oid}")
        assert order["steps_regressed"] >= 1 and order["state"] == "running"

        p.shelter.door.do("close")  # closed again: verified again, the alert clears
        await p.wait_step(oid, "close-protective-door", "done", timeout=15)
        await p.wait_order(oid, "completed", timeout=45)
        cleared = [a for a in await alerted() if a["state"] == "cleared"]
        assert cleared, await alerted()
        report = await p.get(f"/api/v1/conversions/{oid}/report")
        assert _by_step(report)["close-protective-door"]["regressions"] == 1
        events = [(r["step"], r["event"]) for r in report["regressions"]]
        assert ("close-protective-door", "step_regressed") in events
        assert ("close-protective-door", "step_reverified") in events
        assert report["regressed_steps"] >= 1
        assert json.dumps(report)  # the whole report is JSON
