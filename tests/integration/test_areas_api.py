"""Command areas through the live API: importing the tree, reading it from each level, and
admins who place people only within their own area (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from area_helpers import AREAS_YAML, area_user, create_area_users, import_areas, sample_tree
from control_helpers import (
    FAST_HASHING,
    PASSWORDS,
    bearer,
    control_settings,
    create_users,
    login,
    serve,
)
from typer.testing import CliRunner

from control import ControlSettings
from control.areas import dump_csv, parse_areas
from control.audit import read_page
from control.auth import Role
from control.db import Database
from control.db.models import AlertRecord
from shelterwatch.cli.main import app as cli
from shelterwatch.store import Sample
from shelterwatch.store.factory import open_store

pytestmark = pytest.mark.integration

AREAS = "/api/v1/areas"


@dataclass
class Rig:
    client: httpx.AsyncClient
    settings: ControlSettings

    async def as_(self, role: Role, area: str | None = None) -> dict[str, str]:
        name = role.value if area is None else area_user(role, area)
        return bearer(await login(self.client, name, PASSWORDS[role]))


@pytest.fixture
async def rig(tmp_path: Path, database_url: str) -> AsyncIterator[Rig]:
    settings = control_settings(database_url, f"sqlite:///{tmp_path / 'store.db'}")
    await create_users(settings, (Role.ADMIN, Role.VIEWER))
    async with (
        serve(settings) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=10) as client,
    ):
        yield Rig(client, settings)


async def test_an_admin_imports_the_tree_and_each_level_sees_its_own_part(rig: Rig) -> None:
    admin = await rig.as_(Role.ADMIN)
    # Before any import there is no tree, and everyone sees everything.
    empty = (await rig.client.get(AREAS, headers=admin)).json()
    assert empty == {"revision": 0, "area": None, "above": [], "areas": []}

    resp = await rig.client.put(
        AREAS, json={"format": "yaml", "content": AREAS_YAML}, headers=admin
    )
    assert resp.status_code == 200, resp.text
    assert resp.json() == {
        "revision": 1,
        "counts": {"province": 1, "city": 2, "county": 3, "site": 4},
    }
    await create_area_users(
        rig.settings, [(Role.VIEWER, "hz-xihu"), (Role.VIEWER, "hz"), (Role.ADMIN, "hz")]
    )

    county = (await rig.client.get(AREAS, headers=await rig.as_(Role.VIEWER, "hz-xihu"))).json()
    assert county["area"] == "hz-xihu"
    assert [a["code"] for a in county["above"]] == ["zj", "hz"]
    # The path above shows names only, never the children that would name a sibling.
    assert all(a["children"] == [] for a in county["above"])
    assert [a["code"] for a in county["areas"]] == ["hz-xihu", "site-x1", "site-x2"]
    assert "hz-binj" not in str(county) and "nb" not in [a["code"] for a in county["areas"]]

    city = await rig.as_(Role.VIEWER, "hz")
    codes = [a["code"] for a in (await rig.client.get(AREAS, headers=city)).json()["areas"]]
    assert codes == ["hz", "hz-binj", "site-b1", "hz-xihu", "site-x1", "site-x2"]
    assert (await rig.client.get(f"{AREAS}/hz-binj", headers=city)).json()["children"] == [
        "site-b1"
    ]
    # A sibling answers exactly like an area that does not exist.
    county_h = await rig.as_(Role.VIEWER, "hz-xihu")
    sibling = await rig.client.get(f"{AREAS}/hz-binj", headers=county_h)
    unknown = await rig.client.get(f"{AREAS}/no-such", headers=county_h)
    assert sibling.status_code == unknown.status_code == 404
    assert "hz-binj" not in sibling.text.replace("'hz-binj'", "")

    # The export of a part imports again as a tree of its own.
    csv_text = (await rig.client.get(f"{AREAS}/export?format=csv", headers=city)).text
    assert csv_text.splitlines()[1] == "hz,杭州市,city,,"
    full = (await rig.client.get(f"{AREAS}/export?format=csv", headers=admin)).text
    assert full == dump_csv(sample_tree())

    # Only an admin who acts everywhere redraws the tree.
    city_admin = await rig.as_(Role.ADMIN, "hz")
    refused = await rig.client.put(
        AREAS, json={"format": "yaml", "content": AREAS_YAML}, headers=city_admin
    )
    assert refused.status_code == 403
    async with Database(rig.settings.database_url) as db:
        rows = [
            r for r in await read_page(db, after_seq=None, limit=500) if r.action == "areas.import"
        ]
    assert [r.target for r in rows] == ["areas:r1"]


async def test_a_bad_tree_is_refused_by_name_and_changes_nothing(rig: Rig) -> None:
    admin = await rig.as_(Role.ADMIN)
    bad = AREAS_YAML.replace("level: county", "level: city", 1)
    resp = await rig.client.put(AREAS, json={"format": "yaml", "content": bad}, headers=admin)
    assert resp.status_code == 422
    detail = resp.json()["detail"][0]
    assert detail["loc"] == ["body", "content"]
    assert "hz-xihu" in detail["msg"] and "cannot sit" in detail["msg"]
    assert (await rig.client.get(AREAS, headers=admin)).json()["revision"] == 0


async def test_a_tree_that_drops_a_users_area_is_refused(rig: Rig) -> None:
    await import_areas(rig.settings)
    await create_area_users(rig.settings, [(Role.VIEWER, "nb-hais")])
    without_nb = AREAS_YAML.split("      - code: nb\n")[0]
    resp = await rig.client.put(
        AREAS, json={"format": "yaml", "content": without_nb}, headers=await rig.as_(Role.ADMIN)
    )
    assert resp.status_code == 409
    assert "viewer.nb-hais (nb-hais)" in resp.json()["detail"]


async def test_an_area_admin_manages_people_only_within_the_area(rig: Rig) -> None:
    await import_areas(rig.settings)
    await create_area_users(
        rig.settings,
        [(Role.ADMIN, "hz"), (Role.VIEWER, "hz-binj"), (Role.VIEWER, "nb-hais")],
    )
    city_admin = await rig.as_(Role.ADMIN, "hz")
    users = "/api/v1/users"
    listed = {u["username"] for u in (await rig.client.get(users, headers=city_admin)).json()}
    # The unscoped viewer and Ningbo's people are not the city's to manage.
    assert listed == {"admin.hz", "viewer.hz-binj"}

    made = await rig.client.post(
        users,
        json={"username": "duty.x", "role": "duty_officer", "password": "a-long-pass-w0rd"},
        headers=city_admin,
    )
    assert made.status_code == 201 and made.json()["area"] == "hz"
    moved = await rig.client.put(
        f"{users}/duty.x/area", json={"area": "hz-xihu"}, headers=city_admin
    )
    assert moved.status_code == 200 and moved.json()["area"] == "hz-xihu"
    # Not beyond the city, not to everywhere, and not someone of another city.
    for body in ({"area": "nb-hais"}, {"area": "zj"}):
        resp = await rig.client.put(f"{users}/duty.x/area", json=body, headers=city_admin)
        assert resp.status_code == 422, resp.text
    everywhere = await rig.client.put(
        f"{users}/duty.x/area", json={"area": None}, headers=city_admin
    )
    assert everywhere.status_code == 403
    for path in ("viewer.nb-hais/disable", "viewer/disable"):
        resp = await rig.client.post(f"{users}/{path}", headers=city_admin)
        assert resp.status_code == 404, resp.text
    # The move applies to the user's very next request.
    duty = bearer(await login(rig.client, "duty.x", "a-long-pass-w0rd"))
    assert (await rig.client.get(AREAS, headers=duty)).json()["area"] == "hz-xihu"
    assert (await rig.client.get("/api/v1/auth/me", headers=duty)).status_code == 200


async def test_the_command_line_imports_shows_and_places_people(
    tmp_path: Path, database_url: str
) -> None:
    config = tmp_path / "control.yaml"
    config.write_text(
        yaml.safe_dump(
            {"mode": "development", "database_url": database_url, "password_hashing": FAST_HASHING}
        ),
        encoding="utf-8",
    )
    tree_file = tmp_path / "areas.csv"
    tree_file.write_text(dump_csv(sample_tree()), encoding="utf-8")
    runner = CliRunner()

    async def run(*args: str, stdin: str | None = None) -> tuple[int, str]:
        result = await asyncio.to_thread(
            runner.invoke, cli, [*args, "--config", str(config)], input=stdin
        )
        return result.exit_code, result.output

    code, out = await run("areas", "show")
    assert code == 0 and "no area tree yet" in out
    code, out = await run("areas", "import", str(tree_file))
    assert code == 0 and "revision 1 in force: 10 areas" in out, out
    code, out = await run("areas", "show")
    assert "    hz-xihu  西湖区 (county)" in out and "site-n1  海曙一号工程 (site) [gw-n1]" in out
    code, out = await run(
        "users", "create", "duty.b", "--role", "duty_officer", "--area", "hz-binj",
        "--password-stdin", stdin="a-long-pass-w0rd\n",
    )  # fmt: skip
    assert code == 0 and "duty.b: duty_officer in hz-binj" in out, out
    code, out = await run("users", "set-area", "duty.b", "nowhere")
    assert code == 1 and "no area 'nowhere'" in out
    code, out = await run("users", "set-area", "duty.b", "all")
    assert code == 0 and "duty.b: duty_officer in every area" in out, out
    exported = tmp_path / "out.yaml"
    code, out = await run("areas", "export", str(exported))
    assert code == 0 and parse_areas(exported.read_text(encoding="utf-8"), fmt="yaml").areas == (
        sample_tree().areas
    )


async def test_a_parent_sees_its_children_rolled_up_and_a_child_no_sibling(rig: Rig) -> None:
    await import_areas(rig.settings)
    await create_area_users(rig.settings, [(Role.VIEWER, "hz"), (Role.VIEWER, "hz-xihu")])
    async with Database(rig.settings.database_url) as db, db.session() as s:
        for n, (site, severity, state) in enumerate(
            [
                ("site-x1", "critical", "raised"),
                ("site-x2", "warning", "acknowledged"),
                ("site-b1", "warning", "raised"),
                ("site-b1", "critical", "cleared"),
                ("site-n1", "critical", "raised"),
            ]
        ):
            s.add(
                AlertRecord(
                    site=site,
                    rule=f"rule-{n}",
                    device="door-1",
                    severity=severity,
                    kind="threshold",
                    message="",
                    raised_ts=1_000 + n,
                    state=state,
                    updated_ts=1_000 + n,
                )
            )
        await s.commit()
    # Readiness as the maintenance sweep records it: site-x2 has no record yet.
    async with open_store(rig.settings.store_url) as store:
        await store.write(
            [
                Sample("readiness", site, "control", "readiness", 5_000 + n, fields)
                for n, (site, fields) in enumerate(
                    [
                        ("site-x1", {"score": 100, "state": "attention", "causes": ""}),
                        ("site-x1", {"score": 90, "state": "ready", "causes": ""}),
                        ("site-b1", {"score": 40, "state": "degraded", "causes": "x"}),
                        ("site-n1", {"score": 10, "state": "not_ready", "causes": "y"}),
                    ]
                )
            ]
        )
    city = await rig.as_(Role.VIEWER, "hz")
    summary = (await rig.client.get(f"{AREAS}/hz/summary", headers=city)).json()
    assert summary["area"]["sites"] == 3
    assert summary["area"]["alerts_open"] == {"critical": 1, "warning": 2}
    assert summary["area"]["readiness_mean"] == 65.0
    assert summary["area"]["readiness"] == {"ready": 1, "degraded": 1, "unknown": 1}
    assert {c["code"]: c["readiness_mean"] for c in summary["children"]} == {
        "hz-binj": 40.0,
        "hz-xihu": 90.0,
    }
    assert {c["code"]: c["alerts_open"] for c in summary["children"]} == {
        "hz-binj": {"warning": 1},
        "hz-xihu": {"critical": 1, "warning": 1},
    }
    county = await rig.as_(Role.VIEWER, "hz-xihu")
    own = (await rig.client.get(f"{AREAS}/hz-xihu/summary", headers=county)).json()
    assert [c["code"] for c in own["children"]] == ["site-x1", "site-x2"]
    for above_or_beside in ("hz", "hz-binj", "zj"):
        resp = await rig.client.get(f"{AREAS}/{above_or_beside}/summary", headers=county)
        assert resp.status_code == 404
    province = (
        await rig.client.get(f"{AREAS}/zj/summary", headers=await rig.as_(Role.ADMIN))
    ).json()
    assert {c["code"]: c["alerts_open"] for c in province["children"]} == {
        "hz": {"critical": 1, "warning": 2},
        "nb": {"critical": 1},
    }
