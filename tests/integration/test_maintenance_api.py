"""The maintenance and work-order API on a live control service: a filter-clogging trend
alert becomes a work order; closing it (audited) and the repaired filter (the alert cleared)
restore the site's readiness; a person confirms an item with a note; reports as CSV and HTML.

The alert is written to the control database as the alert link records it (a real
filter-clogging trend needs days of simulated filter_dp to fire), and "repairing the fault"
is the engine's clearing of that alert: the simulator-to-alert path is covered by the
collector's trend tests; this test covers everything from the alert record on.
"""

from __future__ import annotations

import datetime
import time
from pathlib import Path

import httpx
import pytest
from control_helpers import PASSWORDS, bearer, control_settings, create_users, login, serve
from sqlalchemy import select, update

from control.auth import Role
from control.db import AuditEntry, ConversionOrder, ConversionTarget, Database
from control.db.models import AlertRecord
from shelterwatch.store import Sample
from shelterwatch.store.factory import open_store

pytestmark = pytest.mark.integration

SITE = "shelter-01"


async def test_a_trend_alert_becomes_a_work_order_whose_closing_restores_readiness(
    tmp_path: Path,
) -> None:
    now = time.time_ns() // 1_000_000
    today = datetime.datetime.now(datetime.UTC).date().isoformat()
    settings = control_settings(
        f"sqlite:///{tmp_path / 'control.db'}",
        f"sqlite:///{tmp_path / 'store.db'}",
        maintenance={"start_date": today},
    )
    await create_users(settings)
    async with open_store(settings.store_url) as store:
        await store.write(
            [
                Sample(
                    "ventilation",
                    SITE,
                    "gw-shelter-01",
                    "vent-1",
                    now - 1000,
                    {"filter_dp": 310.0, "mode": "filtered", "fan_running": True},
                )
            ]
        )
    async with Database(settings.database_url) as db:
        async with db.session() as s:
            alert = AlertRecord(
                site=SITE,
                rule="filter_clogging",
                device="vent-1",
                severity="minor",
                kind="trend",
                point="filter_dp",
                message="Filter differential pressure reaches 2x its clean value in 5 days",
                value="310.0",
                predicted_ts=now + 5 * 86_400_000,
                raised_ts=now - 500,
                state="raised",
                updated_ts=now - 500,
            )
            s.add(alert)
            # The shelter's last conversion drill, completed in time a month ago.
            drill = ConversionOrder(
                id="conv-00000000d1d1",
                direction="to_wartime",
                kind="drill",
                level="drill-30min",
                exercise="drill",
                state="completed",
                detail="",
                reason="monthly drill",
                requested_by="duty_officer",
                requested_ms=now - 30 * 86_400_000,
                decision_comment="",
                deadline_s=1800.0,
                warned=False,
                missed=False,
                finished_ms=now - 30 * 86_400_000 + 1_500_000,
                updated_ms=now - 30 * 86_400_000 + 1_500_000,
            )
            drill.targets.append(
                ConversionTarget(
                    site=SITE,
                    gateway="gw-shelter-01",
                    plan_name="shelter-to-wartime",
                    plan_version=1,
                    plan_hash="0" * 64,
                    plan_json="{}",
                    posture_before="peacetime",
                    finished_ms=now - 30 * 86_400_000 + 1_500_000,
                )
            )
            s.add(drill)
            await s.commit()
            alert_id = alert.id

        async with (
            serve(settings) as base_url,
            httpx.AsyncClient(base_url=base_url, timeout=10) as client,
        ):
            viewer = bearer(await login(client, "viewer", PASSWORDS[Role.VIEWER]))
            fixer = bearer(await login(client, "maintainer", PASSWORDS[Role.MAINTAINER]))

            before = (
                await client.get(f"/api/v1/maintenance/sites/{SITE}/readiness", headers=viewer)
            ).json()
            causes = {c["key"]: c["points"] for c in before["causes"]}
            assert causes == {"reason.minor_alerts": 3}
            assert (before["score"], before["state"]) == (97, "attention")

            # The console's fleet view shows the same score and what cost the points.
            fleet = await client.get("/console/fleet", params={"lang": "en"}, headers=viewer)
            assert fleet.status_code == 200
            assert 'data-score="97"' in fleet.text
            assert 'data-cause="reason.minor_alerts"' in fleet.text and "−3" in fleet.text

            made = await client.post("/api/v1/maintenance/sweep", headers=fixer)
            assert made.status_code == 200, made.text
            (order,) = made.json()
            assert (order["alert_id"], order["item"], order["origin"]) == (
                alert_id,
                "filter-absorber",
                f"alert:{alert_id}",
            )
            assert order["state"] == "open" and order["site"] == SITE
            assert (await client.post("/api/v1/maintenance/sweep", headers=fixer)).json() == []
            again = await client.post(
                "/api/v1/work-orders", json={"alert_id": alert_id}, headers=fixer
            )
            assert again.status_code == 409

            url = f"/api/v1/work-orders/{order['id']}"
            started = await client.post(f"{url}/start", json={"assignee": "wang"}, headers=fixer)
            assert started.json()["state"] == "in_progress"
            assert started.json()["assignee"] == "wang"
            closed = await client.post(
                f"{url}/close", json={"note": "filter absorber replaced"}, headers=fixer
            )
            assert closed.status_code == 200, closed.text
            assert closed.json()["state"] == "done"
            assert closed.json()["closed_by"] == "maintainer"
            assert closed.json()["closing_note"] == "filter absorber replaced"
            assert (
                await client.post(f"{url}/close", json={"note": "x"}, headers=fixer)
            ).status_code == 409
            listed = await client.get(
                "/api/v1/work-orders", params={"state": "done"}, headers=viewer
            )
            assert [o["id"] for o in listed.json()] == [order["id"]]

            # Closing an order about an item records the item done.
            items = (await client.get(f"/api/v1/maintenance/sites/{SITE}", headers=viewer)).json()
            absorber = next(i for i in items["items"] if i["item"] == "filter-absorber")
            assert absorber["state"] == "done"
            assert absorber["last"]["note"] == "filter absorber replaced"

            # The new filter: filter_dp falls back and the engine clears the alert.
            async with db.session() as s:
                await s.execute(
                    update(AlertRecord)
                    .where(AlertRecord.id == alert_id)
                    .values(state="cleared", cleared_ts=now)
                )
                await s.commit()
            after = (
                await client.get(f"/api/v1/maintenance/sites/{SITE}/readiness", headers=viewer)
            ).json()
            assert (after["score"], after["state"], after["causes"]) == (100, "ready", [])
            fleet = await client.get("/console/fleet", params={"lang": "en"}, headers=viewer)
            assert 'data-score="100"' in fleet.text and "data-cause=" not in fleet.text

            # A person confirms an item with a note.
            confirm = f"/api/v1/maintenance/sites/{SITE}/items/gauge-calibration/confirm"
            ok = await client.post(
                confirm, json={"note": "calibrated, cert 2026-117"}, headers=fixer
            )
            assert ok.status_code == 200, ok.text
            assert ok.json()["state"] == "done" and ok.json()["last"]["actor"] == "maintainer"
            assert (
                await client.post(confirm, json={"note": "x"}, headers=viewer)
            ).status_code == 403
            assert (
                await client.post(confirm, json={"note": " "}, headers=fixer)
            ).status_code == 422
            nowhere = confirm.replace("gauge-calibration", "no-such-item")
            assert (
                await client.post(nowhere, json={"note": "x"}, headers=fixer)
            ).status_code == 404

            csv_page = await client.get(
                f"/api/v1/maintenance/sites/{SITE}/report", params={"format": "csv"}, headers=viewer
            )
            assert csv_page.headers["content-type"].startswith("text/csv")
            assert (
                "gauge-calibration" in csv_page.text and "maintainer: calibrated" in csv_page.text
            )
            html_page = await client.get(
                f"/api/v1/maintenance/sites/{SITE}/report",
                params={"format": "html"},
                headers=viewer,
            )
            assert html_page.headers["content-type"].startswith("text/html")
            unknown = await client.get(
                "/api/v1/maintenance/districts/nowhere/report", headers=viewer
            )
            assert unknown.status_code == 404

        async with db.session() as s:
            actions = list(
                await s.scalars(
                    select(AuditEntry.action).where(AuditEntry.action.like("work_orders.%"))
                )
            )
            closing = (
                await s.scalars(select(AuditEntry).where(AuditEntry.action == "work_orders.close"))
            ).one()
        assert actions == ["work_orders.create", "work_orders.start", "work_orders.close"]
        assert closing.actor == "maintainer" and order["id"] in closing.target
