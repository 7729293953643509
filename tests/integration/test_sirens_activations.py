"""Siren activations end to end over a real Mosquitto, the live API and the control
database (SQLite and PostgreSQL). The gateways are a fake that speaks the contract: it
records every command on ``{p}/gw/+/cmd`` and answers with the acks each test chooses.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

from control.audit import read_page
from control.auth import Role
from control.db import Database
from shelterwatch.contract import SIREN_ACTIVATE, SIREN_CANCEL
from shelterwatch.signing import load_private_key, verify_command

pytestmark = pytest.mark.integration

# Three sirens behind gateway a, two behind gateway b, one behind c (in no group).
SIRENS = [
    ("s-a1", "gw-a", "north"),
    ("s-a2", "gw-a", "north"),
    ("s-a3", "gw-a", "north"),
    ("s-b1", "gw-b", "north"),
    ("s-b2", "gw-b", "south"),
    ("s-c1", "gw-c", "west"),
]


@dataclass
class Rig:
    client: httpx.AsyncClient
    gw: FakeGateway
    tokens: dict[Role, dict[str, str]]
    public_key: Any
    database_url: str

    async def post(self, role: Role, path: str, body: Any = None) -> httpx.Response:
        return await self.client.post(path, json=body, headers=self.tokens[role])

    async def get(self, path: str, **params: Any) -> Any:
        resp = await self.client.get(path, params=params, headers=self.tokens[Role.VIEWER])
        assert resp.status_code == 200, resp.text
        return resp.json()

    async def wait_state(self, activation: str, *states: str, timeout: float = 10) -> Any:
        async def reached() -> bool:
            return (await self.get(f"/api/v1/activations/{activation}"))["state"] in states

        await wait_until(reached, timeout, f"{activation} in {states}")
        return await self.get(f"/api/v1/activations/{activation}")


@contextlib.asynccontextmanager
async def rig(
    tmp_path: Path, database_url: str, mosquitto: MosquittoServer, **sirens: Any
) -> AsyncIterator[Rig]:
    tag = uuid.uuid4().hex[:8]
    mqtt = mqtt_settings(mosquitto.port, prefix=f"t{tag}/v1")
    settings = control_settings(
        database_url,
        f"sqlite:///{tmp_path / 'store.db'}",
        mqtt=mqtt,
        command_client_id=f"ctl-{tag}",
        alerts={"client_id": f"ctl-alerts-{tag}"},
        command_grace_s=0.5,
        sirens={"sweep_interval_s": 0.1, **sirens},
    )
    public_key = load_private_key(settings.command_private_key.get_secret_value()).public_key()
    await create_users(settings)
    async with (
        FakeGateway(mqtt) as gw,
        serve(settings) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as client,
    ):
        tokens = {r: bearer(await login(client, r.value, PASSWORDS[r])) for r in Role}
        # A second commander, for approvals of a commander's own request.
        r = Rig(client, gw, tokens, public_key, database_url)
        for sid, gateway, district in SIRENS:
            body = {
                "id": sid,
                "name": f"post {sid}",
                "site": f"site-{sid}",
                "gateway": gateway,
                "device": f"dev-{sid}",
                "district": district,
                "lat": 36.0,
                "lon": 120.0,
                "radius_m": 700,
            }
            assert (await r.post(Role.COMMANDER, "/api/v1/sirens", body)).status_code == 201
        resp = await r.post(
            Role.COMMANDER, "/api/v1/siren-groups", {"name": "north", "districts": ["north"]}
        )
        assert resp.status_code == 201
        yield r


def live(reason: str = "air raid reported") -> dict[str, Any]:
    return {
        "kind": "live",
        "signal": "air_raid",
        "groups": ["north"],
        "sirens": ["s-b2"],
        "reason": reason,
    }


async def test_a_live_alert_without_approval_never_reaches_a_gateway(
    tmp_path: Path, database_url: str, mosquitto: MosquittoServer
) -> None:
    async with rig(tmp_path, database_url, mosquitto, approval_window_s=1.5) as r:
        preview = await r.post(Role.DUTY_OFFICER, "/api/v1/activation-previews", live())
        assert preview.status_code == 200, preview.text
        assert preview.json()["needs_approval"] is True
        assert [t["siren"] for t in preview.json()["targets"]] == [
            "s-a1",
            "s-a2",
            "s-a3",
            "s-b1",
            "s-b2",
        ]
        assert [g["gateway"] for g in preview.json()["gateways"]] == ["gw-a", "gw-b"]

        # A maintainer may run silent tests, not alerts; a request needs a reason.
        assert (await r.post(Role.MAINTAINER, "/api/v1/activations", live())).status_code == 403
        assert (
            await r.post(Role.DUTY_OFFICER, "/api/v1/activations", live(" "))
        ).status_code == 422
        unknown = await r.post(
            Role.DUTY_OFFICER, "/api/v1/activations", {**live(), "sirens": ["nope"]}
        )
        assert unknown.status_code == 404 and "nope" in unknown.json()["detail"]

        resp = await r.post(Role.DUTY_OFFICER, "/api/v1/activations", live())
        assert resp.status_code == 202, resp.text
        act = resp.json()
        assert act["state"] == "pending_approval" and "approve" in act["state_detail"]
        assert [t["siren"] for t in act["targets"]] == ["s-a1", "s-a2", "s-a3", "s-b1", "s-b2"]

        # Its own requester may not approve it, whatever their role.
        own = await r.post(Role.COMMANDER, "/api/v1/activations", live("commander's own"))
        self_approve = await r.post(
            Role.COMMANDER, f"/api/v1/activations/{own.json()['id']}/approve"
        )
        assert self_approve.status_code == 409 and "two-person" in self_approve.json()["detail"]

        expired = await r.wait_state(act["id"], "expired", timeout=10)
        assert "nobody approved it" in expired["state_detail"]
        assert {t["state"] for t in expired["targets"]} == {"cancelled"}
        late = await r.post(Role.COMMANDER, f"/api/v1/activations/{act['id']}/approve")
        assert late.status_code == 409 and "expired" in late.json()["detail"]

        # Nothing reached the broker, and no command was ever recorded.
        await anyio.sleep(0.5)
        assert r.gw.received == []
        commands = await r.client.get("/api/v1/commands", headers=r.tokens[Role.VIEWER])
        assert commands.json() == []
        async with Database(r.database_url) as db:
            rows = await read_page(db, after_seq=0, limit=1000)
        actions = [row.action for row in rows if row.target == act["id"]]
        assert actions == ["siren.request", "siren.expire"]


async def test_approval_fans_out_one_signed_command_per_gateway_and_outcomes_make_the_report(
    tmp_path: Path, database_url: str, mosquitto: MosquittoServer
) -> None:
    async with rig(tmp_path, database_url, mosquitto) as r:
        act = (await r.post(Role.DUTY_OFFICER, "/api/v1/activations", live())).json()
        await anyio.sleep(0.3)
        assert r.gw.received == []
        approved = await r.post(
            Role.COMMANDER, f"/api/v1/activations/{act['id']}/approve", {"comment": "confirmed"}
        )
        assert approved.status_code == 200, approved.text
        assert approved.json()["approved_by"] == "commander"

        await wait_until(lambda: len(r.gw.received) >= 2, 10, "two commands")
        await anyio.sleep(0.3)
        by_gateway = {gw: cmd for gw, cmd in r.gw.commands(SIREN_ACTIVATE)}
        assert len(r.gw.received) == 2 and sorted(by_gateway) == ["gw-a", "gw-b"]
        for gw, cmd in by_gateway.items():
            assert verify_command(cmd, r.public_key), gw
            assert cmd.id == f"{act['id']}-{gw}"
            assert cmd.siren is not None and cmd.siren.activation == act["id"]
            assert cmd.siren.kind.value == "live" and cmd.siren.signal is not None
            assert cmd.siren.signal.name == "air_raid"
            assert (cmd.expires - cmd.ts) / 1000 >= 174  # the whole signal plus a margin
        assert by_gateway["gw-a"].siren.sirens == ["dev-s-a1", "dev-s-a2", "dev-s-a3"]  # type: ignore[union-attr]
        assert by_gateway["gw-b"].siren.sirens == ["dev-s-b1", "dev-s-b2"]  # type: ignore[union-attr]

        t0 = by_gateway["gw-a"].ts
        a, b = f"{act['id']}-gw-a", f"{act['id']}-gw-b"
        await r.gw.ack("gw-a", a, "accepted")
        for dev in ("dev-s-a1", "dev-s-a2", "dev-s-a3"):
            await r.gw.ack("gw-a", a, "running", device=dev, outcome="started", ts=t0 + 400)
        await r.gw.ack(
            "gw-a",
            a,
            "succeeded",
            device="dev-s-a1",
            outcome="sounded",
            detail="full signal",
            ts=t0 + 174_400,
        )
        # The same answer twice, and a stale "started" after the end: harmless.
        for _ in range(2):
            await r.gw.ack(
                "gw-a", a, "succeeded", device="dev-s-a2", outcome="sounded", ts=t0 + 174_500
            )
        await r.gw.ack("gw-a", a, "running", device="dev-s-a2", outcome="started", ts=t0 + 174_600)
        await r.gw.ack(
            "gw-a",
            a,
            "failed",
            device="dev-s-a3",
            outcome="failed",
            detail="no current draw",
            ts=t0 + 2000,
        )
        await r.gw.ack(
            "gw-b",
            b,
            "failed",
            device="dev-s-b1",
            outcome="unreachable",
            detail="no answer from unit 2",
            ts=t0 + 1500,
        )
        await r.gw.ack(
            "gw-b", b, "succeeded", device="dev-s-b2", outcome="sounded", ts=t0 + 174_700
        )

        done = await r.wait_state(act["id"], "completed", "completed_with_failures")
        assert done["state"] == "completed_with_failures"
        assert "3 of 5 sirens good" in done["state_detail"]
        report = await r.get(f"/api/v1/activations/{act['id']}/report")
        assert report["counts"] == {"failed": 1, "sounded": 3, "unreachable": 1}
        rows = {t["siren"]: t for t in report["targets"]}
        assert rows["s-a3"]["detail"] == "no current draw"
        assert rows["s-b1"]["state"] == "unreachable"
        assert rows["s-a1"]["started"] == t0 + 400 and rows["s-a1"]["finished"] == t0 + 174_400
        assert rows["s-a1"]["took_ms"] is not None and rows["s-a1"]["took_ms"] > 170_000
        assert rows["s-a2"]["state"] == "sounded"
        csv_text = (
            await r.client.get(
                f"/api/v1/activations/{act['id']}/report",
                params={"format": "csv"},
                headers=r.tokens[Role.VIEWER],
            )
        ).text
        assert csv_text.splitlines()[0].startswith("siren,name,district")
        assert len(csv_text.splitlines()) == 6
        # Every per-siren outcome is in the audit trail, once.
        async with Database(r.database_url) as db:
            rows_ = await read_page(db, after_seq=0, limit=1000)
        outcomes = [row for row in rows_ if row.action == "siren.outcome"]
        assert len([o for o in outcomes if o.result != "started"]) == 5
        assert (
            await r.post(Role.DUTY_OFFICER, f"/api/v1/activations/{act['id']}/cancel")
        ).status_code == 409


async def test_cancel_sends_siren_cancel_to_every_gateway_involved(
    tmp_path: Path, database_url: str, mosquitto: MosquittoServer
) -> None:
    async with rig(tmp_path, database_url, mosquitto) as r:
        body = {
            "kind": "drill",
            "signal": "prealert",
            "groups": ["north"],
            "reason": "district drill",
        }
        act = (await r.post(Role.DUTY_OFFICER, "/api/v1/activations", body)).json()
        assert act["state"] == "active" and act["exercise"] == "drill"
        await wait_until(
            lambda: len(r.gw.commands(SIREN_ACTIVATE)) == 2, 10, "the drill's commands"
        )
        a = f"{act['id']}-gw-a"
        await r.gw.ack("gw-a", a, "running", device="dev-s-a1", outcome="started")

        # Recorded before the cancel: a siren that never started is cancelled at once, and
        # then so is the whole activation, with nothing left to wait for.
        async def s_a1_started() -> bool:
            view = await r.get(f"/api/v1/activations/{act['id']}")
            return any(t["siren"] == "s-a1" and t["state"] == "started" for t in view["targets"])

        await wait_until(s_a1_started, 10, "s-a1 recorded as started")
        # A maintainer may not stop a drill; a duty officer may.
        assert (
            await r.post(Role.MAINTAINER, f"/api/v1/activations/{act['id']}/cancel")
        ).status_code == 403
        resp = await r.post(
            Role.DUTY_OFFICER,
            f"/api/v1/activations/{act['id']}/cancel",
            {"comment": "wrong district"},
        )
        assert resp.status_code == 200 and resp.json()["state"] == "cancelling"
        await wait_until(lambda: len(r.gw.commands(SIREN_CANCEL)) == 2, 10, "two cancels")
        for gw, cmd in r.gw.commands(SIREN_CANCEL):
            assert verify_command(cmd, r.public_key)
            assert cmd.params == {"activation": act["id"]} and cmd.id == f"cancel-{act['id']}-{gw}"
        assert sorted(gw for gw, _ in r.gw.commands(SIREN_CANCEL)) == ["gw-a", "gw-b"]
        for sid, gw in (
            ("s-a1", "gw-a"),
            ("s-a2", "gw-a"),
            ("s-a3", "gw-a"),
            ("s-b1", "gw-b"),
            ("s-b2", "gw-b"),
        ):
            await r.gw.ack(
                gw,
                f"{act['id']}-{gw}",
                "cancelled",
                device=f"dev-{sid}",
                outcome="cancelled",
                detail="stopped",
            )
        done = await r.wait_state(act["id"], "cancelled")
        assert "cancelled by duty_officer" in done["state_detail"]
        assert done["counts"] == {"cancelled": 4}
        # A live request not yet approved is withdrawn: nothing is sent at all.
        before = len(r.gw.received)
        pending = (await r.post(Role.DUTY_OFFICER, "/api/v1/activations", live())).json()
        withdrawn = await r.post(Role.DUTY_OFFICER, f"/api/v1/activations/{pending['id']}/cancel")
        assert (
            withdrawn.json()["state"] == "cancelled"
            and "withdrawn" in withdrawn.json()["state_detail"]
        )
        await anyio.sleep(0.5)
        assert len(r.gw.received) == before


async def test_silent_test_outcomes_no_answer_and_health_flags(
    tmp_path: Path, database_url: str, mosquitto: MosquittoServer
) -> None:
    async with rig(tmp_path, database_url, mosquitto, silent_test_ttl_s=1.5) as r:
        body = {"kind": "silent_test", "sirens": ["s-a1", "s-a2", "s-c1"], "reason": "Monday test"}
        act = (await r.post(Role.MAINTAINER, "/api/v1/activations", body)).json()
        assert act["state"] == "active"
        await wait_until(lambda: len(r.gw.received) == 2, 10, "two silent-test commands")
        a = f"{act['id']}-gw-a"
        await r.gw.ack("gw-a", a, "succeeded", device="dev-s-a1", outcome="test_passed")
        await r.gw.ack(
            "gw-a", a, "failed", device="dev-s-a2", outcome="test_failed", detail="amplifier fault"
        )
        # gw-c never answers: after its command's expiry plus the grace, s-c1 is no_answer.
        done = await r.wait_state(act["id"], "completed_with_failures", timeout=10)
        rows = {t["siren"]: t for t in done["targets"]}
        assert rows["s-c1"]["state"] == "no_answer"
        assert "no answer from gateway gw-c" in rows["s-c1"]["detail"]
        assert rows["s-c1"]["sent"] is not None
        # The failures are flagged wherever sirens are listed.
        flagged = await r.get("/api/v1/sirens", flagged="true")
        assert [s["id"] for s in flagged] == ["s-a2", "s-c1"]
        assert flagged[0]["last_test"]["outcome"] == "test_failed"
        assert "amplifier fault" in flagged[0]["flag_reason"]
        passed = await r.get("/api/v1/sirens/s-a1")
        assert passed["last_test"]["outcome"] == "test_passed" and not passed["flagged"]
        # A flagged siren is still targeted, and marked in the preview.
        preview = await r.post(Role.MAINTAINER, "/api/v1/activation-previews", body)
        assert preview.json()["flagged"] == 2
        # A late real answer replaces the no_answer guess.
        await r.gw.ack(
            "gw-c", f"{act['id']}-gw-c", "succeeded", device="dev-s-c1", outcome="test_passed"
        )

        async def corrected() -> bool:
            got = await r.get(f"/api/v1/activations/{act['id']}")
            return {t["siren"]: t["state"] for t in got["targets"]}["s-c1"] == "test_passed"

        await wait_until(corrected, 10, "the late answer")
        listed = await r.get("/api/v1/activations", kind="silent_test", limit=5)
        assert [a_["id"] for a_ in listed] == [act["id"]]
