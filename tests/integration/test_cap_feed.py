"""CAP 1.2 out of the control service, over a real Mosquitto and the live API (SQLite and
PostgreSQL): an approved live alert publishes one Alert on ``{p}/cap`` and its cancel a
Cancel that references it; a drill an Exercise; an unapproved request nothing; a message
stored while the broker is down goes out once when it is back; a test-day run one Test
message with its whole programme.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import anyio
import httpx
import pytest
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

from control.audit import read_page
from control.auth import Role
from control.cap import (
    Area,
    CapRequest,
    CapSender,
    Circle,
    MsgType,
    Polygon,
    SirenAlert,
    build_alert,
    parse_alert,
    validate,
)
from control.capfeed import CapFeed
from control.capfeed import records as cap_records
from control.commands import CommandService
from control.db import AuditEntry, Database
from control.schedules import ManualClock, ScheduleCreate, ScheduleService
from control.sirens import SirenService
from control.sirens.inventory import create_siren
from control.sirens.models import SirenCreate
from shelterwatch.config import MqttSettings
from shelterwatch.contract import SIREN_ACTIVATE, SirenKind, cap_topic
from shelterwatch.mqtt_client import MqttClient
from shelterwatch.signals import builtin_signals

pytestmark = pytest.mark.integration

SHANGHAI = ZoneInfo("Asia/Shanghai")
# id, gateway, district, lat, lon, radius_m
SIRENS = [
    ("s-a1", "gw-a", "north", 36.0, 120.0, 700.0),
    ("s-a2", "gw-a", "north", 36.01, 120.0, 900.0),
    ("s-b1", "gw-b", "south", 36.1, 120.1, 1500.0),
    ("s-c1", "gw-c", "", 36.5, 120.5, 500.0),
]
CIRCLES = {sid: (lat, lon, r / 1000) for sid, _, _, lat, lon, r in SIRENS}


class CapListener:
    """Everything published on ``{p}/cap``, as received."""

    def __init__(self, mqtt: MqttSettings, client_id: str | None = None) -> None:
        self.mqtt = mqtt
        self.payloads: list[bytes] = []
        self._client = MqttClient(
            mqtt, client_id or f"cap-sub-{uuid.uuid4().hex[:8]}", persistent=client_id is not None
        )
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> CapListener:
        await self._client.connect()
        await self._client.subscribe([cap_topic(self.mqtt.prefix)], qos=1)
        self._task = asyncio.create_task(self._collect(), name="cap-listener")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        with contextlib.suppress(Exception):
            await self._client.close()

    async def _collect(self) -> None:
        async for message in self._client.messages():
            self.payloads.append(message.payload)

    def read(self) -> list[CapRequest]:
        for xml in self.payloads:
            validate(xml)  # the official CAP 1.2 schema
        return [parse_alert(xml) for xml in self.payloads]


def _siren_body(sid: str, gateway: str, district: str, lat: float, lon: float, r: float) -> Any:
    return {
        "id": sid,
        "name": f"post {sid}",
        "site": f"site-{sid}",
        "gateway": gateway,
        "device": f"dev-{sid}",
        "district": district,
        "lat": lat,
        "lon": lon,
        "radius_m": r,
    }


@dataclass
class Rig:
    client: httpx.AsyncClient
    gw: FakeGateway | None
    cap: CapListener
    tokens: dict[Role, dict[str, str]]
    database_url: str
    mqtt: MqttSettings
    extra: dict[str, Any] = field(default_factory=dict)

    async def post(self, role: Role, path: str, body: Any = None, **params: Any) -> httpx.Response:
        return await self.client.post(path, json=body, params=params, headers=self.tokens[role])

    async def get(self, path: str, **params: Any) -> Any:
        resp = await self.client.get(path, params=params, headers=self.tokens[Role.VIEWER])
        assert resp.status_code == 200, resp.text
        return resp.json()

    async def audit_actions(self, target: str) -> list[str]:
        async with Database(self.database_url) as db:
            rows = await read_page(db, after_seq=0, limit=1000)
        return [row.action for row in rows if row.target == target]


@contextlib.asynccontextmanager
async def rig(
    tmp_path: Path, database_url: str, port: int, *, broker_stops: bool = False, **sirens: Any
) -> AsyncIterator[Rig]:
    tag = uuid.uuid4().hex[:8]
    mqtt = mqtt_settings(port, prefix=f"t{tag}/v1")
    settings = control_settings(
        database_url,
        f"sqlite:///{tmp_path / 'store.db'}",
        mqtt=mqtt,
        command_client_id=f"ctl-{tag}",
        alerts={"client_id": f"ctl-alerts-{tag}"},
        command_grace_s=0.5,
        sirens={"sweep_interval_s": 0.1, **sirens},
        cap={"sender": "rfb@city.example.cn"},
    )
    await create_users(settings)
    async with (
        # A test that stops the broker has no gateway: the fake would not outlive the stop.
        contextlib.nullcontext() if broker_stops else FakeGateway(mqtt) as gw,
        CapListener(mqtt) as cap,
        serve(settings) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as client,
    ):
        tokens = {r: bearer(await login(client, r.value, PASSWORDS[r])) for r in Role}
        r = Rig(client, gw, cap, tokens, database_url, mqtt)
        for row in SIRENS:
            resp = await r.post(Role.COMMANDER, "/api/v1/sirens", _siren_body(*row))
            assert resp.status_code == 201, resp.text
        resp = await r.post(
            Role.COMMANDER, "/api/v1/siren-groups", {"name": "north", "districts": ["north"]}
        )
        assert resp.status_code == 201
        yield r


LIVE = {
    "kind": "live",
    "signal": "air_raid",
    "groups": ["north"],
    "sirens": ["s-b1"],
    "reason": "air raid reported",
}


async def test_an_approved_live_alert_publishes_one_alert_and_its_cancel_references_it(
    tmp_path: Path, database_url: str, mosquitto: MosquittoServer
) -> None:
    async with rig(tmp_path, database_url, mosquitto.port) as r:
        act = (await r.post(Role.DUTY_OFFICER, "/api/v1/activations", LIVE)).json()
        await anyio.sleep(0.5)
        assert r.cap.payloads == [] and await r.get("/api/v1/cap") == []

        approved = await r.post(Role.COMMANDER, f"/api/v1/activations/{act['id']}/approve")
        assert approved.status_code == 200, approved.text
        await wait_until(lambda: len(r.cap.payloads) >= 1, 10, "the CAP alert")
        await anyio.sleep(0.3)
        [alert] = r.cap.read()
        assert (alert.status.value, alert.msg_type, alert.kind.value) == ("Actual", "Alert", "live")
        assert alert.sender == "rfb@city.example.cn" and alert.signal == "air_raid"
        assert alert.activation == act["id"]
        circles = {(c.lat, c.lon, c.radius_km) for a in alert.areas for c in a.circles}
        assert circles == {CIRCLES[s] for s in ("s-a1", "s-a2", "s-b1")}
        assert sorted(a.description for a in alert.areas) == ["north", "south"]

        [row] = await r.get(f"/api/v1/activations/{act['id']}/cap")
        assert row["identifier"] == alert.identifier and row["published"] is not None
        assert (row["direction"], row["status"], row["msg_type"]) == ("out", "Actual", "Alert")
        doc = await r.client.get(f"/api/v1/cap/{alert.identifier}", headers=r.tokens[Role.VIEWER])
        assert doc.headers["content-type"].startswith("application/cap+xml")
        assert doc.content == r.cap.payloads[0]

        cancelled = await r.post(Role.DUTY_OFFICER, f"/api/v1/activations/{act['id']}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        await wait_until(lambda: len(r.cap.payloads) >= 2, 10, "the CAP cancel")
        cancel = r.cap.read()[1]
        assert (cancel.status.value, cancel.msg_type) == ("Actual", MsgType.CANCEL)
        [ref] = cancel.references
        assert (ref.sender, ref.identifier, ref.sent) == (
            alert.sender,
            alert.identifier,
            alert.sent,
        )
        listed = await r.get("/api/v1/cap", activation=act["id"])
        assert [m["msg_type"] for m in listed] == ["Cancel", "Alert"]  # newest first
        want = [
            "siren.request",
            "siren.approve",
            "siren.dispatch",
            "cap.publish",
            "siren.cancel",
            "cap.publish",
        ]

        # The publish is audited just after the broker took it: the subscriber may be first.
        async def all_audited() -> bool:
            return await r.audit_actions(act["id"]) == want

        await wait_until(all_audited, 10, "the publishes audited")


async def test_a_drill_publishes_an_exercise_and_an_unapproved_request_nothing(
    tmp_path: Path, database_url: str, mosquitto: MosquittoServer
) -> None:
    async with rig(tmp_path, database_url, mosquitto.port, approval_window_s=1.0) as r:
        live = (await r.post(Role.DUTY_OFFICER, "/api/v1/activations", LIVE)).json()
        drill = {**LIVE, "kind": "drill", "signal": "prealert", "exercise": "秋季演习"}
        resp = await r.post(Role.DUTY_OFFICER, "/api/v1/activations", drill)
        assert resp.status_code == 202, resp.text
        silent = {"kind": "silent_test", "sirens": ["s-c1"], "reason": "monday"}
        assert (await r.post(Role.MAINTAINER, "/api/v1/activations", silent)).status_code == 202
        await wait_until(lambda: len(r.cap.payloads) >= 1, 10, "the CAP exercise")

        async def expired() -> bool:
            state = (await r.get(f"/api/v1/activations/{live['id']}"))["state"]
            return bool(state == "expired")

        await wait_until(expired, 10, "the live request to expire")
        await anyio.sleep(0.5)
        [exercise] = r.cap.read()
        assert (exercise.status.value, exercise.kind.value) == ("Exercise", "drill")
        assert exercise.exercise == "秋季演习" and exercise.activation == resp.json()["id"]
        # Neither the expired live request nor the silent test left a message.
        assert [m["activation"] for m in await r.get("/api/v1/cap")] == [resp.json()["id"]]
        assert await r.get(f"/api/v1/activations/{live['id']}/cap") == []


async def test_a_message_stored_while_the_broker_is_down_is_published_once_when_it_is_back(
    tmp_path: Path, database_url: str
) -> None:
    broker = MosquittoServer(tmp_path / "broker")
    await asyncio.to_thread(broker.start)
    try:
        async with rig(tmp_path, database_url, broker.port, broker_stops=True) as r:
            # A subscriber with a persistent session: the broker keeps what it missed.
            sub_id = f"cap-durable-{uuid.uuid4().hex[:6]}"
            async with CapListener(r.mqtt, sub_id):
                pass
            await asyncio.to_thread(broker.stop)
            drill = {**LIVE, "kind": "drill", "signal": "air_raid"}
            resp = await r.post(Role.DUTY_OFFICER, "/api/v1/activations", drill)
            assert resp.status_code == 202, resp.text  # the sirens' part does not wait
            act = resp.json()["id"]
            await anyio.sleep(0.5)
            [row] = await r.get("/api/v1/cap", activation=act)
            assert row["published"] is None

            await asyncio.to_thread(broker.start)

            async def published() -> bool:
                rows = await r.get("/api/v1/cap", activation=act)
                return rows[0]["published"] is not None

            await wait_until(published, 15, "the stored CAP message to be published")
            async with CapListener(r.mqtt, sub_id) as late:
                await anyio.sleep(1.0)
            [exercise] = late.read()
            assert exercise.activation == act and exercise.status.value == "Exercise"
            assert (await r.audit_actions(act)).count("cap.publish") == 1
    finally:
        await asyncio.to_thread(broker.stop)


async def test_a_claimed_message_is_not_taken_by_a_second_replica(database: Database) -> None:
    row = await cap_records.insert(
        database,
        {
            "direction": "out",
            "identifier": "SW-act-000000000001",
            "sender": "rfb@city.example.cn",
            "msg_type": "Alert",
            "status": "Exercise",
            "activation": "act-000000000001",
            "sent_ms": 0,
            "xml": "<alert/>",
            "actor": "test",
        },
    )
    assert row is not None
    now = cap_records.now_ms()
    assert await cap_records.claim(database, row.id, "replica-a", now + 30_000) is not None
    assert await cap_records.claim(database, row.id, "replica-b", now + 30_000) is None
    assert await cap_records.unpublished(database, cap_records.now_ms()) == []
    assert await cap_records.mark_published(database, row.id, "p/cap")
    assert not await cap_records.mark_published(database, row.id, "p/cap")


async def test_a_test_day_run_publishes_one_test_message_with_its_programme(
    database: Database, mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    mqtt = mqtt_settings(mosquitto.port, prefix=f"t{tag}/v1")
    # The siren service sounds full signals only on a test day, by the real clock: today.
    today = datetime.now(SHANGHAI).strftime("%m-%d")
    settings = control_settings(
        database.url.replace("+aiosqlite", "").replace("+asyncpg", ""),
        f"sqlite:///{tmp_path / 'store.db'}",
        mqtt=mqtt,
        command_client_id=f"ctl-{tag}",
        sirens={"test_days": [today]},
    )
    for sid, gateway, district, lat, lon, r in SIRENS[:2]:
        await create_siren(
            database, SirenCreate.model_validate(_siren_body(sid, gateway, district, lat, lon, r))
        )
    clock = ManualClock(datetime(2026, 9, 17, tzinfo=SHANGHAI))
    commands = CommandService(settings, database)
    feed = CapFeed(settings, database, commands, builtin_signals(), poll_s=0.2)
    async with (
        CapListener(mqtt) as cap,
        commands,
        SirenService(settings, database, commands, listener=feed) as sirens,
        ScheduleService(
            database,
            builtin_signals(),
            sirens,
            clock=clock,
            replica="a",
            run=False,
            programmes=feed,
        ) as schedules,
    ):
        spec = {"name": "test-day", "sirens": ["s-a1", "s-a2"], "template": "test_day_a"}
        await schedules.create(
            ScheduleCreate.model_validate(spec), actor="cmdr", role=Role.COMMANDER
        )
        for minute in (0, 8, 16):
            clock.set(datetime(2026, 9, 18, 10, minute, tzinfo=SHANGHAI))
            [row] = await schedules.runner.run_due()
            assert row.state == "fired", row.detail
        await wait_until(lambda: len(cap.payloads) >= 1, 10, "the CAP test message")
        await anyio.sleep(0.5)
    [test] = cap.read()
    assert (test.status.value, test.msg_type, test.kind.value) == ("Test", "Alert", "audible_test")
    assert [(at.isoformat(), signal) for at, signal in test.programme] == [
        ("2026-09-18T10:00:00+08:00", "prealert"),
        ("2026-09-18T10:08:00+08:00", "air_raid"),
        ("2026-09-18T10:16:00+08:00", "all_clear"),
    ]
    assert {(c.lat, c.lon, c.radius_km) for a in test.areas for c in a.circles} == {
        CIRCLES["s-a1"],
        CIRCLES["s-a2"],
    }
    async with database.session() as s:
        audited = await s.scalars(select(AuditEntry).where(AuditEntry.action == "cap.publish"))
        assert [a.target for a in audited] == ["schedule:test-day"]


# -- inbound: an upstream authority's CAP pre-fills a request ------------------------------

UPSTREAM = CapSender(
    "province@example.cn", "省人民防空办公室", "Provincial Civil Air Defence Office"
)


def _upstream(identifier: str, *areas: Area, kind: SirenKind = SirenKind.LIVE) -> str:
    return build_alert(
        SirenAlert(
            identifier=identifier,
            sender=UPSTREAM,
            sent=datetime.now(SHANGHAI).replace(microsecond=0),
            activation="province-7",
            kind=kind,
            signal=builtin_signals()["air_raid"],
            areas=areas,
        )
    ).decode()


async def test_upstream_cap_prefills_a_request_that_still_needs_its_approver(
    tmp_path: Path, database_url: str, mosquitto: MosquittoServer
) -> None:
    async with rig(tmp_path, database_url, mosquitto.port) as r:
        assert r.gw is not None
        square = Polygon(
            ((36.49, 120.49), (36.49, 120.51), (36.51, 120.51), (36.51, 120.49), (36.49, 120.49))
        )
        dry = await r.post(
            Role.DUTY_OFFICER,
            "/api/v1/activations/from-cap",
            {"xml": _upstream("PROV-1", Area("西郊", polygons=(square,)))},
            dry_run="true",
        )
        assert dry.status_code == 200, dry.text
        answer = dry.json()
        assert (answer["dry_run"], answer["kind"], answer["signal"]) == (True, "live", "air_raid")
        assert answer["targets"] == ["s-c1"] and answer["matches"][0]["by"] == "polygon"
        assert answer["needs_approval"] and answer["activation"] is None
        assert [t["siren"] for t in answer["preview"]["targets"]] == ["s-c1"]
        assert answer["upstream"]["identifier"] == "PROV-1"
        assert answer["upstream"]["sender"] == "province@example.cn"
        assert answer["reason"].startswith("CAP PROV-1 (province@example.cn): ")
        assert await r.get("/api/v1/activations") == [] and await r.get("/api/v1/cap") == []

        xml = _upstream(
            "PROV-2", Area("市北", circles=(Circle(36.005, 120.0, 0.2),)), Area("South")
        )
        viewer = await r.post(Role.VIEWER, "/api/v1/activations/from-cap", {"xml": xml})
        assert viewer.status_code == 403
        made = await r.post(Role.DUTY_OFFICER, "/api/v1/activations/from-cap", {"xml": xml})
        assert made.status_code == 202, made.text
        act = made.json()["activation"]
        assert act["state"] == "pending_approval" and act["kind"] == "live"
        assert [(m["siren"], m["by"]) for m in made.json()["matches"]] == [
            ("s-a1", "circle"),
            ("s-a2", "circle"),
            ("s-b1", "district"),
        ]
        assert "PROV-2" in act["reason"]
        again = await r.post(Role.DUTY_OFFICER, "/api/v1/activations/from-cap", {"xml": xml})
        assert again.status_code == 409 and act["id"] in again.json()["detail"]
        [stored] = await r.get("/api/v1/cap", direction="in")
        assert (stored["identifier"], stored["activation"]) == ("PROV-2", act["id"])
        await anyio.sleep(0.5)
        assert r.gw.received == [] and r.cap.payloads == []

        approved = await r.post(Role.COMMANDER, f"/api/v1/activations/{act['id']}/approve")
        assert approved.status_code == 200, approved.text
        await wait_until(lambda: len(r.gw.commands(SIREN_ACTIVATE)) == 2, 10, "the commands")
        assert (await r.audit_actions(act["id"]))[:3] == [
            "siren.request",
            "cap.receive",
            "siren.approve",
        ]


async def test_upstream_cap_that_cannot_be_acted_on_is_refused_with_the_reason(
    tmp_path: Path, database_url: str, mosquitto: MosquittoServer
) -> None:
    async with rig(tmp_path, database_url, mosquitto.port) as r:
        xml = _upstream("PROV-3", Area("市北", circles=(Circle(36.0, 120.0, 1.0),)))
        path = "/api/v1/activations/from-cap"
        system = xml.replace("<status>Actual</status>", "<status>System</status>")
        resp = await r.post(Role.DUTY_OFFICER, path, {"xml": system})
        assert resp.status_code == 422 and "status System" in resp.json()["detail"]
        resp = await r.post(Role.DUTY_OFFICER, path, {"xml": xml[:-40]})
        assert resp.status_code == 422 and "not well-formed XML: line" in resp.json()["detail"]
        broken = xml.replace("<urgency>Immediate</urgency>", "<urgency>Soon</urgency>")
        resp = await r.post(Role.DUTY_OFFICER, path, {"xml": broken})
        assert resp.status_code == 422 and "schema" in resp.json()["detail"]
        far = _upstream("PROV-4", Area("远郊", circles=(Circle(30.0, 110.0, 1.0),)))
        resp = await r.post(Role.DUTY_OFFICER, path, {"xml": far})
        assert resp.status_code == 422 and "远郊" in resp.json()["detail"]
        assert await r.get("/api/v1/activations") == [] and await r.get("/api/v1/cap") == []
