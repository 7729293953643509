"""A filter-clogging fault from the simulator to a work order and back to full readiness, over
the real path and the control service's own periodic sweep.

firmware_sim shelter → gateway (Modbus TCP) → the session's Mosquitto → collector (alert engine
on, the shipped rules with time compressed as in test_alert_scenarios) → the trend alert on
``{p}/alert/...`` → the control service's alert link records it → the periodic maintenance
sweep (every 0.5 s here) makes a work order for it and records the site's readiness in the
time-series store. The test only watches and acts as people do: it closes the work order
through the API and repairs the fault in the simulator (a new filter); the alert clears, the
readiness comes back, and the inspection report's readiness history (read back from the store)
shows the drop with its cause and the recovery, in JSON, CSV and HTML.
"""

from __future__ import annotations

import csv
import datetime
import io
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from alert_rules_fast import fast_rules
from control_helpers import PASSWORDS, bearer, control_settings, create_users, login, serve
from platform_helpers import collector_for, gateways_for, mqtt_settings, running
from servers import MosquittoServer, wait_until
from sqlalchemy import select

from control.auth import Role
from control.db import AuditEntry, ConversionOrder, ConversionTarget, Database
from control.maintenance.job import SERVICE_ACTOR
from firmware_sim import Fleet, FleetSpec
from shelterwatch.store.sqlite import SqliteStore

pytestmark = pytest.mark.integration

SITE = "shelter-01"
FACTOR = 60.0  # rule time: a minute becomes a second
# filter_clogging samples hourly and needs 24 points: an hour becomes half a second.
PER_RULE = {"filter_clogging": 7200.0}
POLL_S = 0.25
SNAPSHOT_S = 1.0
SWEEP_S = 0.5


async def _drill_on_record(database_url: str, now: int) -> None:
    """A conversion drill completed in time a month ago: without it the site would lose the
    drill's points and never be fully ready."""
    async with Database(database_url) as db, db.session() as s:
        done = now - 30 * 86_400_000 + 1_500_000
        drill = ConversionOrder(
            id="conv-00000000d1d2",
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
            finished_ms=done,
            updated_ms=done,
        )
        drill.targets.append(
            ConversionTarget(
                site=SITE,
                gateway=f"gw-{SITE}",
                plan_name="shelter-to-wartime",
                plan_version=1,
                plan_hash="0" * 64,
                plan_json="{}",
                posture_before="peacetime",
                finished_ms=done,
            )
        )
        s.add(drill)
        await s.commit()


async def test_a_clogging_filter_becomes_a_work_order_and_its_repair_restores_readiness(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    started = time.time_ns() // 1_000_000
    mqtt = mqtt_settings(mosquitto.port, prefix=f"t{uuid.uuid4().hex[:6]}/v1")
    store_path = tmp_path / "store.db"
    settings = control_settings(
        f"sqlite:///{tmp_path / 'control.db'}",
        f"sqlite:///{store_path}",
        mqtt=mqtt,
        command_client_id=f"cmd-{uuid.uuid4().hex[:8]}",
        alerts={"client_id": f"alerts-{uuid.uuid4().hex[:8]}"},
        # Every item starts today: none is due, so the alert is the only thing to do.
        maintenance={
            "start_date": datetime.datetime.now(datetime.UTC).date().isoformat(),
            "sweep_interval_s": SWEEP_S,
        },
    )
    await create_users(settings, (Role.VIEWER, Role.MAINTAINER))
    await _drill_on_record(settings.database_url, started)

    rules = tmp_path / "rules.yaml"
    fast_rules(rules, FACTOR, PER_RULE)
    fleet = Fleet(FleetSpec(shelters=1, sirens=0, tick_s=0.2, seed=11))
    for shelter in fleet.shelters.values():
        shelter.env.humidity = 60.0  # a seeded start can be close to the 75 % limit

    async with (
        SqliteStore(store_path) as store,
        fleet,
        serve(settings) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=10) as client,
    ):
        collector = collector_for(
            store,
            mqtt,
            client_id=f"c-{uuid.uuid4().hex[:8]}",
            alerts={
                "enabled": True,
                "rules_path": str(rules),
                "state_path": str(tmp_path / "alert-state.db"),
                "repeat_critical_s": 900 / FACTOR,
                "tick_s": 0.2,
            },
        )
        gateways = gateways_for(
            fleet, mqtt, interval_s=POLL_S, outbox_dir=tmp_path, snapshot_interval_s=SNAPSHOT_S
        )
        viewer = bearer(await login(client, "viewer", PASSWORDS[Role.VIEWER]))
        fixer = bearer(await login(client, "maintainer", PASSWORDS[Role.MAINTAINER]))
        readiness_url = f"/api/v1/maintenance/sites/{SITE}/readiness"

        async def readiness() -> dict[str, Any]:
            got = await client.get(readiness_url, headers=viewer)
            assert got.status_code == 200, got.text
            body: dict[str, Any] = got.json()
            return body

        # The history is read from the moment the shelter was first seen ready (before, the
        # sweep recorded it as no_data).
        since = started

        async def history() -> list[dict[str, Any]]:
            got = await client.get(
                f"/api/v1/maintenance/sites/{SITE}/report",
                params={"since_ms": since, "until_ms": time.time_ns() // 1_000_000 + 1000},
                headers=viewer,
            )
            assert got.status_code == 200, got.text
            points: list[dict[str, Any]] = got.json()["sites"][0]["readiness_history"]
            return points

        async def orders() -> list[dict[str, Any]]:
            got = await client.get("/api/v1/work-orders", params={"site": SITE}, headers=viewer)
            assert got.status_code == 200, got.text
            rows: list[dict[str, Any]] = got.json()
            return rows

        async with running(collector.run(), *(g.run() for g in gateways)):
            await wait_until(collector.subscribed.is_set, 10, "the collector subscribed")

            # Every device reporting, nothing open: ready, and the sweep has recorded it.
            async def fully_ready() -> bool:
                r = await readiness()
                return (r["score"], r["state"]) == (100, "ready")

            await wait_until(fully_ready, 20, "the shelter reporting and ready")
            since = time.time_ns() // 1_000_000

            async def ready_recorded() -> bool:
                return any(p["score"] == 100 for p in await history())

            await wait_until(ready_recorded, 10, "the sweep recording readiness 100")
            assert await orders() == []

            # The filter clogs: the trend alert, then the sweep's work order for it.
            await fleet.fault(SITE, "filter_clogging", rate_pa_s=3.0)

            async def ordered() -> bool:
                return bool(await orders())

            await wait_until(ordered, 40, "a work order for the filter-clogging trend alert")
            (order,) = await orders()
            assert order["alert_id"] is not None
            alert = (await client.get(f"/api/v1/alerts/{order['alert_id']}", headers=viewer)).json()
            assert (alert["rule"], alert["kind"], alert["device"]) == (
                "filter_clogging",
                "trend",
                "vent",
            )
            assert alert["state"] == "raised"
            assert (order["item"], order["origin"], order["state"]) == (
                "filter-absorber",
                f"alert:{alert['id']}",
                "open",
            )
            assert order["created_by"] == SERVICE_ACTOR
            assert order["title"].startswith("filter_clogging on vent:")

            # Readiness drops, and says why: the open minor alert costs 3 points.
            dropped = await readiness()
            assert (dropped["score"], dropped["state"]) == (97, "attention")
            assert [(c["key"], c["points"], c["count"]) for c in dropped["causes"]] == [
                ("reason.minor_alerts", 3, 1)
            ]

            async def drop_recorded() -> bool:
                return any(p["score"] == 97 for p in await history())

            await wait_until(drop_recorded, 10, "the sweep recording readiness 97")

            # The maintainer replaces the filter and closes the order; the simulator's fault
            # is repaired (a new filter, ventilation back to clean mode).
            closed = await client.post(
                f"/api/v1/work-orders/{order['id']}/close",
                json={"note": "filter absorber replaced, dp 178 Pa"},
                headers=fixer,
            )
            assert closed.status_code == 200, closed.text
            assert (closed.json()["state"], closed.json()["closed_by"]) == ("done", "maintainer")
            await fleet.repair(SITE, "filter_clogging")

            async def cleared() -> bool:
                got = await client.get(f"/api/v1/alerts/{alert['id']}", headers=viewer)
                return bool(got.json()["state"] == "cleared")

            await wait_until(cleared, 15, "the filter-clogging alert cleared after the repair")
            await wait_until(fully_ready, 10, "readiness back to 100 after the repair")

            async def recovery_recorded() -> bool:
                points = await history()
                scores = [p["score"] for p in points]
                return 97 in scores and scores[-1] == 100 and scores.index(97) < len(scores) - 1

            await wait_until(recovery_recorded, 10, "the sweep recording the recovery")
            # No second order for the same alert, however many sweeps ran meanwhile.
            assert [o["id"] for o in await orders()] == [order["id"]]
            items = (await client.get(f"/api/v1/maintenance/sites/{SITE}", headers=viewer)).json()
            absorber = next(i for i in items["items"] if i["item"] == "filter-absorber")
            assert absorber["state"] == "done"
            assert absorber["last"]["note"] == "filter absorber replaced, dp 178 Pa"

        # The report's readiness history, read back from the store: ready, the drop with its
        # cause, ready again (only the changes are listed).
        points = await history()
        assert [(p["score"], p["state"], p["causes"]) for p in points] == [
            (100, "ready", ""),
            (97, "attention", "minor_alerts −3"),
            (100, "ready", ""),
        ]
        assert points[0]["ts_ms"] < points[1]["ts_ms"] < points[2]["ts_ms"]
        until = time.time_ns() // 1_000_000 + 1000
        period = {"since_ms": since, "until_ms": until}
        csv_text = (
            await client.get(
                f"/api/v1/maintenance/sites/{SITE}/report",
                params=period | {"format": "csv"},
                headers=viewer,
            )
        ).text
        recorded = [r for r in csv.DictReader(io.StringIO(csv_text)) if r["record"] == "readiness"]
        assert [(r["score"], r["state"], r["evidence"]) for r in recorded] == [
            ("100", "ready", ""),
            ("97", "attention", "minor_alerts −3"),
            ("100", "ready", ""),
        ]
        assert all(r["at"] for r in recorded)
        page = (
            await client.get(
                f"/api/v1/maintenance/sites/{SITE}/report",
                params=period | {"format": "html"},
                headers=viewer,
            )
        ).text
        assert "Readiness history" in page
        assert "<td>97</td><td>attention</td><td>minor_alerts −3</td>" in page

    async with Database(settings.database_url) as db, db.session() as s:
        trail = [
            (e.actor, e.action)
            for e in await s.scalars(
                select(AuditEntry)
                .where(AuditEntry.action.like("work_orders.%"))
                .order_by(AuditEntry.seq)
            )
        ]
    assert trail == [
        (SERVICE_ACTOR, "work_orders.create"),
        ("maintainer", "work_orders.close"),
    ]
