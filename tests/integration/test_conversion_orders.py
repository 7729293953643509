"""Conversion orders through the control service alone (no shelter behind it): a drill and
a real order differ only in kind, approval and labelling; the two-person rule; who may do
what; the posture stored and published retained. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

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
from servers import MosquittoServer

from control.auth import Role
from shelterwatch.contract import SitePosture
from shelterwatch.mqtt_client import MqttClient

pytestmark = pytest.mark.integration

# What may differ between a drill and a real order of the same shelters; nothing else may.
LABELLING = {
    "id",
    "kind",
    "exercise",
    "state",
    "detail",
    "reason",
    "requested_ms",
    "approve_by_ms",
    "approved_by",
    "approved_ms",
    "started_ms",
    "deadline_ms",
    "warn_ms",
    "updated_ms",
    "events",
    "finished_ms",
    "cancelled_by",
}


def _comparable(order: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in order.items() if k not in LABELLING}
    for target in out["targets"]:
        for step in target["steps"]:
            for key in ("state", "detail", "started_ms", "updated_ms"):
                step.pop(key, None)
    return out


async def _retained_posture(mqtt: Any, site: str, posture: str) -> SitePosture:
    """Subscribe afresh until the retained posture of ``site`` is ``posture``."""
    async with asyncio.timeout(10):
        while True:
            async with MqttClient(mqtt, f"posture-{uuid.uuid4().hex[:6]}") as client:
                await client.subscribe([f"{mqtt.prefix}/posture/{site}"], qos=1)
                async for message in client.messages():
                    assert message.retain
                    got = SitePosture.model_validate_json(message.payload)
                    if got.posture == posture:
                        return got
                    break
            await asyncio.sleep(0.2)


async def test_drill_and_real_differ_only_in_kind_approval_and_labelling(
    tmp_path: Path, database_url: str, mosquitto: MosquittoServer
) -> None:
    tag = uuid.uuid4().hex[:8]
    mqtt = mqtt_settings(mosquitto.port, prefix=f"ord{tag}/v1")
    settings = control_settings(
        database_url,
        f"sqlite:///{tmp_path / 'store.db'}",
        mqtt=mqtt,
        command_client_id=f"ctl-{tag}",
        alerts={"client_id": f"ctl-alerts-{tag}"},
        conversions={"sweep_interval_s": 0.2},
    )
    await create_users(settings)
    async with (
        FakeGateway(mqtt) as gateway,
        serve(settings) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as client,
    ):
        tokens = {r: bearer(await login(client, r.value, PASSWORDS[r])) for r in Role}

        async def post(role: Role, path: str, body: Any) -> httpx.Response:
            return await client.post(path, json=body, headers=tokens[role])

        def body(kind: str, site: str) -> dict[str, Any]:
            return {"kind": kind, "level": "emergency", "shelters": [{"site": site}], "reason": "r"}

        drill = await post(Role.DUTY_OFFICER, "/api/v1/conversions", body("drill", "shelter-01"))
        real = await post(Role.DUTY_OFFICER, "/api/v1/conversions", body("real", "shelter-02"))
        assert drill.status_code == real.status_code == 202, (drill.text, real.text)
        d, r = drill.json(), real.json()
        assert (d["state"], d["exercise"]) == ("running", "drill")
        assert (r["state"], r["exercise"]) == ("pending_approval", None)
        # The same plan, steps, checks and deadline; only the shelter's name differs.
        d_cmp, r_cmp = _comparable(d), _comparable(r)
        d_cmp["targets"][0]["site"] = r_cmp["targets"][0]["site"]
        d_cmp["targets"][0]["gateway"] = r_cmp["targets"][0]["gateway"]
        assert d_cmp == r_cmp

        # A real order is not an exercise; a level must exist; a site in an open order waits.
        bad = body("real", "shelter-03") | {"exercise": "x"}
        assert (await post(Role.DUTY_OFFICER, "/api/v1/conversions", bad)).status_code == 422
        bad = body("drill", "shelter-03") | {"level": "nope"}
        assert (await post(Role.DUTY_OFFICER, "/api/v1/conversions", bad)).status_code == 422
        again = await post(Role.DUTY_OFFICER, "/api/v1/conversions", body("drill", "shelter-02"))
        assert again.status_code == 409 and r["id"] in again.text

        # Approval: a commander, not the requester.
        path = f"/api/v1/conversions/{r['id']}"
        assert (await post(Role.DUTY_OFFICER, f"{path}/approve", {})).status_code == 403
        self_approve = await post(Role.COMMANDER, "/api/v1/conversions", body("real", "shelter-04"))
        own = self_approve.json()["id"]
        refused = await post(Role.COMMANDER, f"/api/v1/conversions/{own}/approve", {})
        assert refused.status_code == 409 and "two-person rule" in refused.text
        approved = await post(Role.COMMANDER, f"{path}/approve", {"comment": "go"})
        assert approved.status_code == 200, approved.text
        assert (
            approved.json()["state"] == "running" and approved.json()["approved_by"] == "commander"
        )

        # Reports carry the labels.
        d_report = (
            await client.get(f"/api/v1/conversions/{d['id']}/report", headers=tokens[Role.VIEWER])
        ).json()
        r_report = (await client.get(f"{path}/report", headers=tokens[Role.VIEWER])).json()
        assert d_report["label"] == "DRILL 演练" and r_report["label"] == "REAL 实战"

        # Cancelling a real order needs a commander; a drill a duty officer.
        assert (await post(Role.DUTY_OFFICER, f"{path}/cancel", {})).status_code == 403
        assert (await post(Role.COMMANDER, f"{path}/cancel", {})).status_code == 200
        cancel = await post(Role.DUTY_OFFICER, f"/api/v1/conversions/{d['id']}/cancel", {})
        assert cancel.status_code == 200 and cancel.json()["state"] == "cancelled"

        # Postures: stored, published retained; a cancel returns them to peacetime.
        posture = await _retained_posture(mqtt, "shelter-02", "peacetime")
        assert posture.order == r["id"]
        assert posture.kind == "real"
        # Manual steps waited for a person and no telemetry came: nothing was written.
        assert gateway.commands() == []
