"""Siren schedules over the live API and on both databases: preview saves nothing, changes
are audited with before and after, roles follow what a schedule sounds, and the runner fires
each step once across replicas or records it missed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from control_helpers import PASSWORDS, bearer, control_settings, create_users, login, serve
from sqlalchemy import select

from control.auth import Role
from control.db import AuditEntry, Database, ScheduleRun
from control.schedules import ManualClock, ScheduleCreate, ScheduleService
from shelterwatch.contract import SirenKind
from shelterwatch.signals import builtin_signals

pytestmark = pytest.mark.integration

SHANGHAI = ZoneInfo("Asia/Shanghai")
SIRENS = ["s1", "s2"]
SILENT = {
    "name": "monday-silent",
    "title": "Monday silent test",
    "rule": "FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0",
    "sirens": SIRENS,
    "programme": [{"kind": "silent_test"}],
}
TEST_DAY = {"name": "test-day", "sirens": SIRENS, "template": "test_day_a"}


# -- over HTTP ----------------------------------------------------------------------------------


@pytest.fixture
async def api(tmp_path: Path, database_url: str) -> Any:
    settings = control_settings(database_url, f"sqlite:///{tmp_path / 'store.db'}")
    await create_users(settings)
    async with (
        serve(settings) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=10) as client,
    ):
        tokens = {role: await login(client, role.value, PASSWORDS[role]) for role in Role}
        await _sirens(client, tokens[Role.ADMIN])
        yield client, tokens, database_url


async def _sirens(client: httpx.AsyncClient, token: str) -> None:
    """The target sirens, where the siren inventory is served."""
    paths = (await client.get("/openapi.json")).json()["paths"]
    if "/api/v1/sirens" not in paths or "post" not in paths["/api/v1/sirens"]:
        return
    for index, siren in enumerate(SIRENS):
        resp = await client.post(
            "/api/v1/sirens",
            headers=bearer(token),
            json={
                "id": siren,
                "name": f"Siren {siren}",
                "site": "shelter-01",
                "gateway": "gw-01",
                "device": f"siren-{index}",
                "lat": 31.2,
                "lon": 121.5,
                "radius_m": 800,
            },
        )
        assert resp.status_code in (200, 201), resp.text


async def _audit(database_url: str) -> list[AuditEntry]:
    async with Database(database_url) as db, db.session() as s:
        rows = await s.execute(
            select(AuditEntry).where(AuditEntry.action.like("schedules.%")).order_by(AuditEntry.seq)
        )
        return list(rows.scalars())


async def test_preview_shows_the_next_runs_and_saves_nothing(api: Any) -> None:
    client, tokens, database_url = api
    auth = bearer(tokens[Role.COMMANDER])
    resp = await client.post("/api/v1/schedules/preview", headers=auth, json=TEST_DAY)
    assert resp.status_code == 200, resp.text
    preview = resp.json()
    assert preview["valid"] and preview["problems"] == []
    assert preview["needs_role"] == "commander"
    assert preview["programme_s"] == 19 * 60
    assert len(preview["runs"]) == 5
    first = preview["runs"][0]
    assert first["start"].endswith("-09-18T10:00:00+08:00")
    assert [(s["start"][11:19], s["signal"], s["duration_s"]) for s in first["steps"]] == [
        ("10:00:00", "prealert", 180),
        ("10:08:00", "air_raid", 180),
        ("10:16:00", "all_clear", 180),
    ]
    assert preview["targets"]["sirens"] == SIRENS
    assert (await client.get("/api/v1/schedules", headers=auth)).json() == []
    assert await _audit(database_url) == []


async def test_create_refuses_what_preview_refuses_with_the_same_messages(api: Any) -> None:
    client, tokens, _ = api
    auth = bearer(tokens[Role.COMMANDER])
    bad = {
        **SILENT,
        "rule": "FREQ=MINUTELY;BYMINUTE=0",
        "programme": [{"kind": "live", "signal": "air_raid"}],
    }
    preview = (await client.post("/api/v1/schedules/preview", headers=auth, json=bad)).json()
    assert not preview["valid"]
    created = await client.post("/api/v1/schedules", headers=auth, json=bad)
    assert created.status_code == 422
    refused = {(tuple(e["loc"][1:]), e["msg"]) for e in created.json()["detail"]}
    assert refused == {(tuple(p["loc"]), p["msg"]) for p in preview["problems"]}
    assert any("a live alert is never scheduled" in msg for _, msg in refused)
    assert any("sub-hourly" in msg for _, msg in refused)


async def test_create_update_disable_delete_are_audited_with_before_and_after(api: Any) -> None:
    client, tokens, database_url = api
    auth = bearer(tokens[Role.DUTY_OFFICER])
    created = await client.post("/api/v1/schedules", headers=auth, json=SILENT)
    assert created.status_code == 201, created.text
    assert created.json()["needs_role"] == "duty_officer"
    assert created.json()["next_run"] is not None
    again = await client.post("/api/v1/schedules", headers=auth, json=SILENT)
    assert again.status_code == 409

    change = {k: v for k, v in SILENT.items() if k != "name"}
    change["rule"] = "FREQ=WEEKLY;BYDAY=TU;BYHOUR=9;BYMINUTE=30"
    updated = await client.put("/api/v1/schedules/monday-silent", headers=auth, json=change)
    assert updated.status_code == 200, updated.text
    assert updated.json()["revision"] == 2
    detail = (await client.get("/api/v1/schedules/monday-silent", headers=auth)).json()
    assert [r["start"][11:16] for r in detail["next_runs"]] == ["09:30"] * 5
    assert (await client.post("/api/v1/schedules/monday-silent/disable", headers=auth)).json()[
        "enabled"
    ] is False
    assert (await client.delete("/api/v1/schedules/monday-silent", headers=auth)).status_code == 204
    assert (await client.get("/api/v1/schedules/monday-silent", headers=auth)).status_code == 404

    rows = await _audit(database_url)
    assert [(r.action, r.result, r.actor) for r in rows] == [
        ("schedules.create", "created", "duty_officer"),
        ("schedules.update", "updated", "duty_officer"),
        ("schedules.disable", "disabled", "duty_officer"),
        ("schedules.delete", "deleted", "duty_officer"),
    ]
    assert json.loads(rows[0].params)["after"]["rule"] == SILENT["rule"]
    assert json.loads(rows[1].params)["changed"] == {
        "rule": {"before": SILENT["rule"], "after": change["rule"]}
    }
    assert json.loads(rows[2].params)["changed"] == {"enabled": {"before": True, "after": False}}
    assert json.loads(rows[3].params)["before"]["rule"] == change["rule"]


async def test_roles_follow_what_the_schedule_sounds(api: Any) -> None:
    client, tokens, _ = api
    duty, commander = bearer(tokens[Role.DUTY_OFFICER]), bearer(tokens[Role.COMMANDER])
    viewer = bearer(tokens[Role.VIEWER])
    assert (await client.post("/api/v1/schedules", headers=viewer, json=SILENT)).status_code == 403
    refused = await client.post("/api/v1/schedules", headers=duty, json=TEST_DAY)
    assert refused.status_code == 403 and "commander" in refused.json()["detail"]
    assert (
        await client.post("/api/v1/schedules", headers=commander, json=TEST_DAY)
    ).status_code == 201
    # A duty officer may neither switch off nor delete what a commander scheduled ...
    for method, path in (("POST", "/disable"), ("DELETE", "")):
        resp = await client.request(method, f"/api/v1/schedules/test-day{path}", headers=duty)
        assert resp.status_code == 403, (method, path)
    # ... nor turn a silent schedule into an audible one.
    assert (await client.post("/api/v1/schedules", headers=duty, json=SILENT)).status_code == 201
    audible = {**{k: v for k, v in SILENT.items() if k != "name"}}
    audible["programme"] = [{"kind": "audible_test", "signal": "test_tone"}]
    resp = await client.put("/api/v1/schedules/monday-silent", headers=duty, json=audible)
    assert resp.status_code == 403
    for path in ("", "/test-day", "/test-day/runs"):
        assert (await client.get(f"/api/v1/schedules{path}", headers=viewer)).status_code == 200
    templates = (await client.get("/api/v1/schedule-templates", headers=viewer)).json()
    assert {"test_day_a", "test_day_b", "test_day_c"} <= {t["name"] for t in templates}


# -- the runner on one database, two replicas ------------------------------------------------


@dataclass
class Started:
    id: str


@dataclass
class RecordingStarter:
    calls: list[tuple[str, str | None]] = field(default_factory=list)

    async def request(
        self,
        *,
        kind: SirenKind,
        signal: str | None,
        sirens: list[str],
        groups: list[str],
        actor: str,
        reason: str,
        schedule: str | None = None,
        exercise: str | None = None,
    ) -> Started:
        self.calls.append((actor, signal))
        await asyncio.sleep(0)  # let the other replica run in between
        return Started(id=f"act-{len(self.calls)}")

    async def resolve(self, *, sirens: list[str], groups: list[str]) -> Sequence[object]:
        return sirens


def _replica(
    db: Database, starter: RecordingStarter, clock: ManualClock, name: str
) -> ScheduleService:
    return ScheduleService(db, builtin_signals(), starter, clock=clock, replica=name, run=False)


async def test_two_replicas_fire_each_step_once(database: Database) -> None:
    clock, starter = ManualClock(datetime(2026, 9, 17, tzinfo=SHANGHAI)), RecordingStarter()
    async with (
        _replica(database, starter, clock, "a") as a,
        _replica(database, starter, clock, "b") as b,
    ):
        await a.create(ScheduleCreate.model_validate(TEST_DAY), actor="cmdr", role=Role.COMMANDER)
        for minute in (0, 8, 16, 20):
            clock.set(datetime(2026, 9, 18, 10, minute, tzinfo=SHANGHAI))
            await asyncio.gather(a.runner.run_due(), b.runner.run_due())
            await asyncio.gather(a.runner.run_due(), b.runner.run_due())
        reports = await a.runs("test-day", limit=10, state=None)
    assert starter.calls == [
        ("schedule:test-day", "prealert"),
        ("schedule:test-day", "air_raid"),
        ("schedule:test-day", "all_clear"),
    ]
    assert sorted((r.step, r.state) for r in reports) == [(1, "fired"), (2, "fired"), (3, "fired")]
    async with database.session() as s:
        assert len((await s.execute(select(ScheduleRun))).scalars().all()) == 3


async def test_a_run_missed_while_down_is_recorded_missed(database: Database) -> None:
    clock, starter = ManualClock(datetime(2026, 11, 29, tzinfo=SHANGHAI)), RecordingStarter()
    async with _replica(database, starter, clock, "a") as svc:
        await svc.create(
            ScheduleCreate.model_validate(SILENT), actor="duty", role=Role.DUTY_OFFICER
        )
        # Back up at 09:45 on Monday: the 09:00 step is 45 min late, past the 10 min grace.
        clock.set(datetime(2026, 11, 30, 9, 45, tzinfo=SHANGHAI))
        await svc.runner.run_due()
        [report] = await svc.runs("monday-silent", limit=10, state="missed")
    assert not starter.calls
    assert report.run.isoformat() == "2026-11-30T09:00:00+08:00"
    assert "45 min late, past the 10 min grace" in report.detail
    assert report.due - report.run == timedelta(0)


# -- with the real siren service ---------------------------------------------------------------


async def test_a_fired_step_creates_a_real_activation(
    database: Database, mosquitto: Any, tmp_path: Path
) -> None:
    from platform_helpers import mqtt_settings

    from control.commands import CommandService
    from control.sirens import SirenService
    from control.sirens.inventory import create_siren
    from control.sirens.models import SirenCreate

    settings = control_settings(
        database.url.replace("+aiosqlite", "").replace("+asyncpg", ""),
        f"sqlite:///{tmp_path / 'store.db'}",
        mqtt=mqtt_settings(mosquitto.port),
    )
    for index, siren in enumerate(SIRENS):
        await create_siren(
            database,
            SirenCreate(
                id=siren,
                name=f"Siren {siren}",
                site="shelter-01",
                gateway="gw-01",
                device=f"siren-{index}",
                lat=31.2,
                lon=121.5,
                radius_m=800,
            ),
        )
    clock = ManualClock(datetime(2026, 11, 29, tzinfo=SHANGHAI))
    async with (
        CommandService(settings, database) as commands,
        SirenService(settings, database, commands) as sirens,
        ScheduleService(
            database, builtin_signals(), sirens, clock=clock, replica="a", run=False
        ) as schedules,
    ):
        await schedules.create(
            ScheduleCreate.model_validate(SILENT), actor="duty", role=Role.DUTY_OFFICER
        )
        clock.set(datetime(2026, 11, 30, 9, 0, tzinfo=SHANGHAI))
        [row] = await schedules.runner.run_due()
        assert row.state == "fired", row.detail
        activation = await sirens.get(str(row.activation))
    assert activation.kind is SirenKind.SILENT_TEST
    assert activation.schedule == "monday-silent"
