"""Alerts in the control service end to end: a real Mosquitto, the control database on SQLite
and PostgreSQL, the HTTP API on uvicorn, and a real HTTP server receiving the webhooks.

Each test has its own topic prefix and client ids, so the session-wide broker's retained
alerts and persistent sessions never carry over from one test into the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from control_helpers import PASSWORDS, bearer, control_settings, create_users, login, serve
from platform_helpers import mqtt_settings
from servers import MosquittoServer, wait_until
from sqlalchemy import select

from control import ControlSettings
from control.alerts import AlertService
from control.alerts.records import notifications_of
from control.alerts.webhooks import DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from control.auth import Role
from control.db import AuditEntry, Database
from control.db.models import AlertNotification
from shelterwatch.config import ENV_PREFIX, MqttSettings
from shelterwatch.contract import Alert, alert_topic
from shelterwatch.mqtt_client import MqttClient

pytestmark = pytest.mark.integration

SITE = "shelter-01"
SECRET = "receiver-shared-secret-0123"
T0 = 1_758_160_920_000


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith(ENV_PREFIX.upper()):
            monkeypatch.delenv(name)


# -- a webhook receiver: a tiny ASGI app on uvicorn ------------------------------------------


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


@dataclass
class Receiver:
    base_url: str = ""
    requests: list[Request] = field(default_factory=list)
    # Per path: the statuses of the next answers, in order; 200 once they run out.
    script: dict[str, list[int]] = field(default_factory=dict)
    # Per path: the status of every answer while set (overrides the script).
    always: dict[str, int] = field(default_factory=dict)

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}"

    def at(self, name: str) -> list[Request]:
        return [r for r in self.requests if r.path == f"/{name}"]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path = scope["path"]
        queued = self.script.get(path.lstrip("/"), [])
        status = self.always.get(path.lstrip("/")) or (queued.pop(0) if queued else 200)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.requests.append(Request(path, headers, body, status))
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rx = Receiver()
    server = _Server(uvicorn.Config(rx, host="127.0.0.1", port=0, log_config=None, lifespan="off"))
    task = asyncio.create_task(server.serve())
    try:
        await wait_until(lambda: server.started, 10, "the webhook receiver")
        rx.base_url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
        yield rx
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


def assert_signed(request: Request) -> None:
    """What a receiver does with every request: check the sender."""
    assert verify(
        SECRET,
        request.headers[TIMESTAMP_HEADER.lower()],
        request.headers[SIGNATURE_HEADER.lower()],
        request.body,
    ), request.headers
    assert request.headers["content-type"] == "application/json"
    assert request.json["delivery"] == request.headers[DELIVERY_HEADER.lower()]


# -- the alert engine's side ----------------------------------------------------------------


@dataclass
class Engine:
    """Publishes alerts the way the collector's engine does (docs/contract.md)."""

    client: MqttClient
    prefix: str

    async def raise_(
        self, rule: str, severity: str = "critical", dev: str = "vent", **kw: Any
    ) -> None:
        alert = Alert(
            active=True,
            ts=kw.pop("ts", T0),
            raised_ts=kw.pop("raised_ts", T0),
            severity=severity,  # type: ignore[arg-type]
            kind="threshold",
            point="overpressure",
            message=kw.pop("message", f"{rule} on {dev}"),
            value=kw.pop("value", 18.4),
        )
        topic = alert_topic(kw.pop("site", SITE), rule, dev, self.prefix)
        await self.client.publish(topic, alert.model_dump_json().encode(), qos=1, retain=True)

    async def clear(self, rule: str, severity: str = "critical", dev: str = "vent") -> None:
        alert = Alert(
            active=False,
            ts=T0 + 120_000,
            raised_ts=T0,
            severity=severity,  # type: ignore[arg-type]
            kind="threshold",
            point="overpressure",
            message="back to normal",
            value=36.1,
        )
        topic = alert_topic(SITE, rule, dev, self.prefix)
        await self.client.publish(topic, alert.model_dump_json().encode(), qos=1)
        await self.client.publish(topic, b"", qos=1, retain=True)


@pytest.fixture
def mqtt(mosquitto: MosquittoServer) -> MqttSettings:
    return mqtt_settings(mosquitto.port, prefix=f"t{uuid.uuid4().hex[:8]}/v1")


@pytest.fixture
async def engine(mqtt: MqttSettings) -> AsyncIterator[Engine]:
    async with MqttClient(mqtt, f"engine-{uuid.uuid4().hex[:8]}") as client:
        yield Engine(client, mqtt.prefix)


def webhook(receiver: Receiver, name: str, **kw: Any) -> dict[str, Any]:
    return {"name": name, "url": receiver.url(name), "secret": SECRET} | kw


def settings_for(
    mqtt: MqttSettings, webhooks: list[dict[str, Any]], **alerts: Any
) -> ControlSettings:
    return ControlSettings(
        mode="development",
        mqtt=mqtt,
        alerts={
            "webhooks": webhooks,
            "webhook_backoff_initial_s": 0.1,
            "webhook_backoff_max_s": 0.3,
            "webhook_timeout_s": 5,
        }
        | alerts,
    )


@contextlib.asynccontextmanager
async def alert_service(
    settings: ControlSettings, db: Database, client_id: str | None = None
) -> AsyncIterator[AlertService]:
    client_id = client_id or f"alerts-test-{uuid.uuid4().hex[:8]}"
    async with AlertService(settings, db, client_id=client_id, sweep_interval_s=0.1) as svc:
        await wait_until(svc.connected.is_set, 10, "the alert service's MQTT link")
        yield svc


async def only_alert_id(svc: AlertService) -> int:
    await wait_until(lambda: _count(svc), 10, "the alert recorded")
    (alert,) = await svc.recent(active_only=False)
    return alert.id


async def _count(svc: AlertService) -> bool:
    return len(await svc.recent(active_only=False)) == 1


# -- the tests ------------------------------------------------------------------------------


async def test_an_alert_from_the_broker_is_listed_acknowledged_and_cleared_through_the_api(
    tmp_path: Path, database_url: str, mqtt: MqttSettings, engine: Engine, receiver: Receiver
) -> None:
    receiver.always["down"] = 503
    settings = control_settings(
        database_url,
        f"sqlite:///{tmp_path / 'store.db'}",
        mqtt=mqtt,
        command_client_id=f"cmd-test-{uuid.uuid4().hex[:8]}",
        alerts={
            "client_id": f"alerts-test-{uuid.uuid4().hex[:8]}",
            "webhooks": [webhook(receiver, "down")],
            "webhook_max_attempts": 1,
        },
    )
    await create_users(settings)
    async with (
        serve(settings) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=10) as client,
    ):
        tok = {role: await login(client, role.value, PASSWORDS[role]) for role in Role}
        viewer = bearer(tok[Role.VIEWER])

        async def listed(query: str = "") -> list[dict[str, Any]]:
            resp = await client.get(f"/api/v1/alerts{query}", headers=viewer)
            assert resp.status_code == 200, resp.text
            rows: list[dict[str, Any]] = resp.json()
            return rows

        async def detail(alert_id: int) -> dict[str, Any]:
            resp = await client.get(f"/api/v1/alerts/{alert_id}", headers=viewer)
            assert resp.status_code == 200, resp.text
            data: dict[str, Any] = resp.json()
            return data

        await engine.raise_("overpressure_low")
        await engine.raise_("overpressure_low")  # a QoS 1 duplicate
        await engine.raise_("filter_clogging", severity="minor", value=168.0)

        async def two() -> bool:
            return len(await listed()) == 2

        await wait_until(two, 15, "both alerts in the API")
        rows = await listed()
        assert {r["rule"] for r in rows} == {"filter_clogging", "overpressure_low"}
        critical = next(r for r in rows if r["rule"] == "overpressure_low")
        minor = next(r for r in rows if r["rule"] == "filter_clogging")
        assert critical | {"id": 0, "updated_ts": 0, "last_notified_ts": 0} == {
            "id": 0,
            "site": SITE,
            "rule": "overpressure_low",
            "device": "vent",
            "severity": "critical",
            "kind": "threshold",
            "point": "overpressure",
            "message": "overpressure_low on vent",
            "value": 18.4,
            "predicted_ts": None,
            "raised_ts": T0,
            "cleared_ts": None,
            "state": "raised",
            "acknowledged": False,
            "acked_by": None,
            "acked_ts": None,
            "ack_comment": None,
            "last_notified_ts": 0,
            "updated_ts": 0,
        }
        # The duplicate changed nothing (a webhook failure may already be in the history).
        history = [e["event"] for e in (await detail(critical["id"]))["events"]]
        assert history.count("raised") == 1 and set(history) <= {"raised", "notification_failed"}
        assert [r["id"] for r in await listed("?severity=critical")] == [critical["id"]]
        assert await listed("?site=shelter-02") == []
        assert (await client.get("/api/v1/alerts?stat=all", headers=viewer)).status_code == 422

        # A delivery given up is visible on the alert.
        async def failed() -> bool:
            notes = (await detail(critical["id"]))["notifications"]
            return [n["state"] for n in notes] == ["failed"]

        await wait_until(failed, 10, "the failed notification")
        (note,) = (await detail(critical["id"]))["notifications"]
        assert (note["webhook"], note["attempts"], note["event"]) == ("down", 1, "raised")
        assert "503" in note["last_error"]
        assert "notification_failed" in [
            e["event"] for e in (await detail(critical["id"]))["events"]
        ]

        # Acknowledging: the right role, and a comment.
        ack = f"/api/v1/alerts/{critical['id']}/ack"
        assert (await client.post(ack, json={"comment": "x"})).status_code == 401
        resp = await client.post(ack, json={"comment": "x"}, headers=viewer)
        assert resp.status_code == 403
        maint = bearer(tok[Role.MAINTAINER])
        assert (await client.post(ack, headers=maint)).status_code == 422
        assert (await client.post(ack, json={}, headers=maint)).status_code == 422
        assert (await client.post(ack, json={"comment": "   "}, headers=maint)).status_code == 422
        resp = await client.post(ack, json={"comment": "fan 2 restarted"}, headers=maint)
        assert resp.status_code == 200, resp.text
        acked = resp.json()
        assert (acked["state"], acked["acked_by"], acked["ack_comment"]) == (
            "acknowledged",
            "maintainer",
            "fan 2 restarted",
        )
        resp = await client.post(
            ack, json={"comment": "me too"}, headers=bearer(tok[Role.COMMANDER])
        )
        assert resp.status_code == 409
        assert "maintainer" in resp.json()["detail"]
        resp = await client.post("/api/v1/alerts/999999/ack", json={"comment": "x"}, headers=maint)
        assert resp.status_code == 404

        # The engine clears both; the minor one was never acknowledged.
        await engine.clear("overpressure_low")
        await engine.clear("filter_clogging", severity="minor")

        async def none_active() -> bool:
            return await listed() == []

        await wait_until(none_active, 15, "both alerts cleared")
        cleared = await detail(critical["id"])
        assert (cleared["state"], cleared["cleared_ts"], cleared["acknowledged"]) == (
            "cleared",
            T0 + 120_000,
            True,
        )
        # (Notifications to the "down" webhook fail beside these, in their own time.)
        assert [e["event"] for e in cleared["events"] if e["event"] != "notification_failed"] == [
            "raised",
            "acknowledged",
            "cleared",
        ]
        assert len(await listed("?state=all")) == 2

        # A cleared alert nobody saw can still be acknowledged; it stays cleared.
        resp = await client.post(
            f"/api/v1/alerts/{minor['id']}/ack",
            json={"comment": "seen after the fact"},
            headers=bearer(tok[Role.DUTY_OFFICER]),
        )
        assert resp.status_code == 200, resp.text
        assert (resp.json()["state"], resp.json()["acknowledged"]) == ("cleared", True)

    async with Database(settings.database_url) as db, db.session() as s:
        audit_rows = list(
            await s.scalars(
                select(AuditEntry).where(AuditEntry.action == "alerts.ack").order_by(AuditEntry.seq)
            )
        )
    assert [(r.actor, json.loads(r.params), r.result) for r in audit_rows] == [
        ("maintainer", {"comment": "fan 2 restarted"}, "acknowledged"),
        ("duty_officer", {"comment": "seen after the fact"}, "acknowledged"),
    ]
    assert audit_rows[0].target.startswith(f"alert:{critical['id']} ")


async def test_webhooks_get_signed_posts_and_failures_are_retried_then_given_up(
    database: Database, mqtt: MqttSettings, engine: Engine, receiver: Receiver
) -> None:
    receiver.script["ops"] = [500]
    receiver.always["broken"] = 500
    settings = settings_for(
        mqtt,
        [
            webhook(receiver, "ops"),
            webhook(receiver, "broken"),
            webhook(receiver, "pager", min_severity="critical"),
        ],
        webhook_max_attempts=3,
        repeat_critical_s=0,
    )
    async with alert_service(settings, database) as svc:
        await engine.raise_("filter_clogging", severity="major")
        alert_id = await only_alert_id(svc)

        async def settled() -> bool:
            rows = await notifications_of(database, alert_id)
            return {r.webhook: r.state for r in rows} == {"ops": "delivered", "broken": "failed"}

        await wait_until(settled, 15, "ops delivered and broken given up")

    ops = receiver.at("ops")
    assert [r.status for r in ops] == [500, 200]
    for request in receiver.requests:
        assert_signed(request)
    # A retry sends the same delivery: same id, same body (a new timestamp and signature).
    assert ops[0].body == ops[1].body
    body = ops[0].json
    assert (body["event"], body["alert"]["id"], body["alert"]["severity"]) == (
        "raised",
        alert_id,
        "major",
    )
    assert (body["alert"]["site"], body["alert"]["rule"]) == (SITE, "filter_clogging")
    assert [r.status for r in receiver.at("broken")] == [500, 500, 500]
    assert receiver.at("pager") == []  # below its min_severity
    rows = {r.webhook: r for r in await notifications_of(database, alert_id)}
    assert (rows["ops"].attempts, rows["ops"].last_error) == (2, "")
    assert (rows["broken"].attempts, rows["broken"].last_error) == (
        3,
        "HTTP 500 Internal Server Error",
    )
    record = await svc.get(alert_id)
    assert record is not None
    assert [e.event for e in record.events] == ["raised", "notification_failed"]

    # A forged or altered body fails the receiver's check.
    forged = ops[0].body.replace(b"major", b"minor")
    assert not verify(
        SECRET,
        ops[0].headers[TIMESTAMP_HEADER.lower()],
        ops[0].headers[SIGNATURE_HEADER.lower()],
        forged,
    )


async def test_an_unacknowledged_critical_alert_repeats_until_acknowledged(
    database: Database, mqtt: MqttSettings, engine: Engine, receiver: Receiver
) -> None:
    settings = settings_for(mqtt, [webhook(receiver, "ops")], repeat_critical_s=0.5)
    async with alert_service(settings, database) as svc:
        await engine.raise_("overpressure_low", severity="critical")
        await engine.raise_("filter_clogging", severity="major")  # not critical: never repeats
        alert_id = None

        def events() -> list[tuple[str, str]]:
            return [(r.json["event"], r.json["alert"]["rule"]) for r in receiver.at("ops")]

        await wait_until(
            lambda: events().count(("repeat", "overpressure_low")) >= 2, 15, "two repeats"
        )
        for request in receiver.requests:
            assert_signed(request)
        alerts = await svc.recent()
        alert_id = next(a.id for a in alerts if a.rule == "overpressure_low")
        await svc.acknowledge(alert_id, "duty_officer", "crew on the way")
        await wait_until(
            lambda: ("acknowledged", "overpressure_low") in events(), 10, "the ack notification"
        )
        seen = len(events())
        await asyncio.sleep(1.5)  # three repeat intervals
        assert len(events()) == seen, events()[seen:]

    got = events()
    assert got.count(("raised", "overpressure_low")) == 1
    assert got.count(("raised", "filter_clogging")) == 1
    assert ("repeat", "filter_clogging") not in got
    after_ack = got[got.index(("acknowledged", "overpressure_low")) :]
    assert ("repeat", "overpressure_low") not in after_ack
    record = await svc.get(alert_id)
    assert record is not None and record.state == "acknowledged"
    assert "repeat" in [e.event for e in record.events]


async def test_a_restart_loses_no_pending_notification_and_no_alert(
    database: Database, mqtt: MqttSettings, engine: Engine, receiver: Receiver
) -> None:
    receiver.always["ops"] = 503
    settings = settings_for(mqtt, [webhook(receiver, "ops")], repeat_critical_s=0)
    client_id = f"alerts-test-{uuid.uuid4().hex[:8]}"
    async with alert_service(settings, database, client_id) as svc:
        await engine.raise_("overpressure_low", severity="major")
        alert_id = await only_alert_id(svc)

        async def tried() -> bool:
            # Both sides: the receiver answered 503, and the queue recorded the attempt (an
            # attempt is counted when it starts, so the row alone can run ahead of the POST).
            if not any(r.status == 503 for r in receiver.at("ops")):
                return False
            rows = await notifications_of(database, alert_id)
            return len(rows) == 1 and rows[0].attempts >= 1

        await wait_until(tried, 10, "a failed attempt")
    (pending,) = await notifications_of(database, alert_id)
    assert pending.state == "pending"
    failed_attempts = len(receiver.at("ops"))
    assert failed_attempts >= 1

    # While the control service is down: the receiver recovers, the engine clears the alert.
    del receiver.always["ops"]
    await engine.clear("overpressure_low", severity="major")

    async with alert_service(settings, database, client_id) as svc:

        async def delivered() -> bool:
            rows = await notifications_of(database, alert_id)
            states = {(r.event, r.state) for r in rows}
            return states == {("raised", "delivered"), ("cleared", "delivered")}

        await wait_until(delivered, 15, "both notifications delivered after the restart")
        record = await svc.get(alert_id)
        assert record is not None and record.state == "cleared"

    ok = [r for r in receiver.at("ops") if r.status == 200]
    assert [r.json["event"] for r in ok] == ["raised", "cleared"]
    assert ok[0].json["delivery"] == pending.id
    for request in receiver.requests:
        assert_signed(request)
    async with database.session() as s:
        queued = list(await s.scalars(select(AlertNotification)))
    assert len(queued) == 2
